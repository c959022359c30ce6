"""Packages whose public names are imported on first use.

`enformer`, `enformer.inference` and `enformer.training` list their names with the module that
defines each; `import enformer` (and `enformer --help`) then loads no TensorFlow, and importing one
submodule imports no other.
"""

import importlib
import importlib.util
from typing import Any, Callable, Dict, List, Mapping, Tuple


def lazy_attributes(
    package: str, exports: Mapping[str, str], namespace: Dict[str, Any], submodules: bool = False
) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
  """(`__getattr__`, `__dir__`) of `package`, whose name → defining module map is `exports`.

  Args:
    package: the package's `__name__`.
    exports: public name → dotted name of the module that defines it.
    namespace: the package's `globals()` (listed by `__dir__`).
    submodules: also resolve `package.NAME` to the submodule NAME (e.g. `enformer.interpret`).
  """

  def __getattr__(name: str) -> Any:  # pylint: disable=invalid-name
    if name in exports:
      return getattr(importlib.import_module(exports[name]), name)
    if submodules and importlib.util.find_spec(f'{package}.{name}') is not None:
      return importlib.import_module(f'{package}.{name}')
    raise AttributeError(f'module {package!r} has no attribute {name!r}')

  def __dir__() -> List[str]:  # pylint: disable=invalid-name
    return sorted(list(namespace) + list(exports))

  return __getattr__, __dir__
