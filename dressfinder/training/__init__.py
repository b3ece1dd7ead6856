"""Training and offline tools, apart from the serving path (which never imports this package).

* ``command.py``: ``dressfinder train`` (``--method autoencoder|contrastive``).
* ``autoencoder.py``: training the seed's autoencoder (its encoder is ``encoders/autoencoder.py``).
* Adapting EfficientNet-Lite0 to a catalogue, so a shopper's photo finds *the* dress (the shipped
  ``effnet-tuned`` model; its encoder is ``encoders/effnet_tuned.py``), all run by ``fit.fit_model``:

  - ``network.py``: the retrieval network in torch: EfficientNet-Lite0, GeM of the head and of
    block 11, minus the catalogue mean, times a learned projection, L2-normalised;
  - ``augment.py``: training augmentations imitating shoppers' photos;
  - ``features.py``: frozen-trunk features run by onnxruntime (stage 1);
  - ``whitening.py``: learned whitening, closed form (stages 2 and 4);
  - ``contrastive.py``: contrastive fine-tuning against a memory bank of the catalogue (stage 3);
  - ``export.py``: ONNX export and the model's sidecar files;
  - ``config.py`` (settings, held-out ids), ``workdir.py`` (resumable work folder, progress).

Nothing here imports torch or Keras at import time; they are imported when a model is made.
"""
