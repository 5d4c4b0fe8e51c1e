"""reconciler: declarative GitOps for Gcore Everywhere Inference deployments."""

import sys

__version__ = "0.1.0"

# `import httpx` also imports httpx's own command-line client (`httpx._main`: click, rich,
# pygments), about 0.1 s of every command that talks to the API, and nothing here uses it. A
# None entry makes that import fail, which httpx handles by defining a stub `httpx.main`. Set
# only if httpx has not loaded it already, so an httpx imported earlier is left as it is.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
