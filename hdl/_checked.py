"""Components whose arguments are checked before the object exists.

Amaranth warns about every elaboratable that is created and never elaborated. A component that
refused its arguments in ``__init__`` would already exist by then and draw that warning on top
of its error, so these components check their arguments in ``__new__``, through a ``check``
class method that takes the constructor's arguments by name, defaults filled in.
"""

from __future__ import annotations

import inspect

__all__ = ["Checked"]


class Checked:
    """Mix in before the Amaranth base class and define ``check(cls, **arguments)``."""

    def __new__(cls, *args, **kwargs):
        bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        arguments.pop(next(iter(arguments)))          # the not-yet-existing self
        cls.check(**arguments)
        return super().__new__(cls, *args, **kwargs)

    @classmethod
    def check(cls, **arguments) -> None:
        """Raise ``ValueError`` or ``TypeError`` for arguments the component cannot take."""
