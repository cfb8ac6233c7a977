"""docs/API.md is the served OpenAPI document, rendered: the two cannot drift apart."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("make_api_doc", ROOT / "scripts/make_api_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_md_is_the_served_openapi_document():
    gen = _generator()
    doc = gen.served_document()
    text = (ROOT / "docs" / "API.md").read_text()
    assert text == gen.render(doc), "docs/API.md is out of date: python scripts/make_api_doc.py"
    for path, item in doc["paths"].items():  # every route and schema has its section
        for method in item:
            assert f"### `{method.upper()} {path}`" in text
    for name in doc["components"]["schemas"]:
        assert f"### {name}\n" in text


def test_render_follows_the_document():
    gen = _generator()
    doc = {
        "paths": {
            "/api/v1/x": {
                "get": {
                    "summary": "An x",
                    "responses": {
                        "200": {
                            "description": "it",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "anyOf": [
                                            {"$ref": "#/components/schemas/X"},
                                            {"type": "null"},
                                        ]
                                    }
                                }
                            },
                        }
                    },
                }
            }
        },
        "components": {
            "schemas": {
                "X": {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}
            }
        },
    }
    text = gen.render(doc)
    assert "| `GET /api/v1/x` | An x |" in text
    assert "| 200 | it | [X](#x) or null |" in text
    assert "| `a` | integer | yes |" in text
