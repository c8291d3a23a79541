"""Files between people, the trio side (docs/protocol.md §16): the pure rules are in
:mod:`p2pchat.files`."""

from p2pchat.node.files.offers import OfferLimits
from p2pchat.node.files.service import FILE_MESSAGES, FileService, FileSettings, FilesNotSupported

__all__ = ["FILE_MESSAGES", "FileService", "FileSettings", "FilesNotSupported", "OfferLimits"]
