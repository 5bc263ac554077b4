"""Importers: other tools' files (Deforum settings, Parseq exports) -> anim preset data with their meaning.

Imports only anim.preset and anim.keyframes (pure data and tables); reading the file and recognising what
it is happens in anim.importers.sniff.
"""
from anim.importers.common import Imported, Note
from anim.importers.sniff import header_comment, import_file, read_settings, sniff

__all__ = ["Imported", "Note", "header_comment", "import_file", "read_settings", "sniff"]
