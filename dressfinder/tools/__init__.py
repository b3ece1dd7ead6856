"""Offline tools, apart from the serving path: ``inspect`` (an HTML report of a catalogue or a
store) and ``recommend`` (every product's most similar products, exported as CSV or JSON).

They read stores and catalogues through the engine (``store``, ``search``, ``catalog``,
``embed``, ``encoders``); nothing in the serving path (``store``, ``search``, ``web``) imports them,
and they import nothing from ``web``.
"""
