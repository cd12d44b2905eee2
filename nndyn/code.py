"""The code of a Python source without its comments and docstrings (standard library only, so
that every layer can use it): what the generated files' input hashes (`nndyn.derive.hashing`)
and the exported programs' cache keys (`nndyn.core.cache`) are taken of, so that documenting or
reformatting code stales neither."""

from __future__ import annotations

import ast
import io
import tokenize


def code_of(source: str) -> str:
    """The tokens of Python `source` without its comments and docstrings, one per line (so
    that reformatting or documenting code does not change it)."""
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(
                node, clean=False) is not None:
            docstrings.add((node.body[0].lineno, node.body[0].col_offset))
    kept = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                          tokenize.ENDMARKER) or (token.type == tokenize.STRING and token.start in docstrings):
            continue
        kept.append(token.string)
    return "\n".join(kept)
