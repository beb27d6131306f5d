"""Model chat formats for raw-text models: prompt rendering and tool-call parsing, one module per family."""

from fncall.formats.chat.base import CallLayout, ChatFormat, ParsedOutput, StreamParser
from fncall.formats.chat.generic import GenericFormat
from fncall.formats.chat.hermes import HermesFormat
from fncall.formats.chat.llama3 import Llama3Format
from fncall.formats.chat.mistral import MistralFormat
from fncall.formats.chat.registry import detect_format, format_names, get_format
from fncall.formats.chat.scanner import CallScanner, ScanRules
from fncall.formats.chat.template import ChatTemplate, ChatTemplateError

__all__ = [
    "CallLayout",
    "CallScanner",
    "ChatFormat",
    "ChatTemplate",
    "ChatTemplateError",
    "GenericFormat",
    "HermesFormat",
    "Llama3Format",
    "MistralFormat",
    "ParsedOutput",
    "ScanRules",
    "StreamParser",
    "detect_format",
    "format_names",
    "get_format",
]
