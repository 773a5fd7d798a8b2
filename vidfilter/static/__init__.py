"""vidfilter.static: the static mode, single images filtered by a network trained on pairs synthesised
from crops (``docs/static.md``): ``config`` (``Config.static``; a leaf, so nothing is imported here),
``preprocess``, ``extract`` + ``recipes`` (annotated images -> a crop bank), ``bank``, ``synthesis``
+ ``samplers`` + ``dataset`` (training pairs), ``infer`` (images, folders, whole slides).
"""
