"""Schema validators for feed outputs used by the test suite.

* Atom 1.0: RELAX NG schema from RFC 4287 Appendix B (``data/atom.rng``).
* JSON Feed 1.1: JSON Schema written from the spec (``data/jsonfeed-1.1.schema.json``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from lxml import etree

DATA_DIR = Path(__file__).resolve().parent / "data"
ATOM_RNG = DATA_DIR / "atom.rng"
JSONFEED_SCHEMA = DATA_DIR / "jsonfeed-1.1.schema.json"

__all__ = ["validate_atom", "validate_jsonfeed"]


def _safe_parser() -> etree.XMLParser:
    """Return an XML parser that never expands entities or touches the network."""
    return etree.XMLParser(resolve_entities=False, no_network=True)


@lru_cache(maxsize=1)
def _atom_relaxng() -> etree.RelaxNG:
    """Load (once) the RFC 4287 RELAX NG schema."""
    return etree.RelaxNG(etree.parse(str(ATOM_RNG), _safe_parser()))


@lru_cache(maxsize=1)
def _jsonfeed_validator() -> jsonschema.Draft202012Validator:
    """Load (once) the JSON Feed 1.1 schema and build a format-checking validator."""
    schema = json.loads(JSONFEED_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.FormatChecker()
    )


def validate_atom(xml: bytes) -> list[str]:
    """Validate an Atom document against RFC 4287's schema; return error messages."""
    try:
        doc = etree.fromstring(xml, _safe_parser())
    except etree.XMLSyntaxError as exc:
        return [f"XML syntax error: {exc}"]
    relaxng = _atom_relaxng()
    if relaxng.validate(doc):
        return []
    return [f"{e.line}:{e.column}: {e.message}" for e in relaxng.error_log]


def validate_jsonfeed(doc: dict[str, Any]) -> list[str]:
    """Validate a JSON Feed 1.1 document (already decoded); return error messages."""
    errors = sorted(
        _jsonfeed_validator().iter_errors(doc), key=lambda e: list(e.absolute_path)
    )
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in errors
    ]
