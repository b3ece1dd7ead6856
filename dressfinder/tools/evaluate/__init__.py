"""``dressfinder evaluate``: how often does a shopper's photo of a catalogue dress bring that dress back?

For every query source (a catalogue image) we make photo-like variants, deterministically from
``--seed``, each one the bytes of a JPEG as an upload would arrive:

==============  ==========================================================================
crop            a part of the picture (45-85 % of the area), other aspect ratio
background      the dress cut out (border-connected background removed) and pasted, smaller,
                onto a new background: a colour, a gradient, stripes/checks, noise texture,
                or a blurred piece of another catalogue photo
color           colour and lighting: brightness, contrast, saturation, hue, gamma, white
                balance, vignette / side light (at least two of them)
blur_jpeg       Gaussian or motion blur, down-scaling, then heavy JPEG compression (q 8-30)
flip            mirror image
grayscale       black-and-white photo (some saved as 8-bit gray JPEG, some as RGB)
rotate          hand-held tilt of 4-15 degrees, corners filled, then cropped
exif            pixels stored rotated/mirrored with the EXIF orientation tag that undoes it
                (phone photos); the loader must apply the tag
combo           three or more of the above together
==============  ==========================================================================

Each config (an encoder and an index) encodes the whole catalogue and the queries, searches, and
we report Recall@1 and Recall@10 (a hit when the source image, or a byte-identical copy of it,
is in the top 1 / top 10), overall and per kind, the "same style" share among the DeepFashion
dresses (of the top 10 results other than the source, how many come from the source's style
folder), and the end-to-end latency of one query (decode + preprocess + encode + search).

Catalogue and query vectors are cached under ``$DRESSFINDER_CACHE/eval`` (keyed by the encoder's
spec and the exact sources), so a second run only pays for what changed.

The stages, one module each: ``variants`` (the photo changes), ``queries`` (the query set),
``configs`` (what is compared, cached vectors), ``run_eval`` (``evaluate()``), ``metrics``,
``report`` (README table, Markdown), ``command`` (``dressfinder evaluate``).
"""
