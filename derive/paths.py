"""Where the derivation's inputs and outputs live: derive/, templates/ and generated/ side by
side (nndyn/derive, nndyn/templates and nndyn/generated once installed)."""

from pathlib import Path

DERIVE_DIR = Path(__file__).resolve().parent
PACKAGE_ROOT = DERIVE_DIR.parent
TEMPLATES_DIR = PACKAGE_ROOT / "templates"
#: Where the committed modules live (only the generator writes there).
GENERATED_DIR = PACKAGE_ROOT / "generated"
