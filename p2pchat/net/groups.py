"""What a nursery's exception group means to the caller of a context manager.

Our nurseries' own tasks never raise, so a group holds what the caller's body raised,
plus the ``Cancelled`` of those tasks when an enclosing deadline fired at the same
moment (a dial's timeout as the peer closes, say). The caller wants the body's error
itself, not a group it has no handler for.
"""

from __future__ import annotations

import trio


def sole_error(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception of ``group`` that is not a cancellation, or None if there are
    several (or none).

    Dropping the ``Cancelled`` beside it is safe: trio's cancellation is level-triggered,
    so a scope that is still cancelled cancels the caller again at its next checkpoint.
    """
    if len(group.exceptions) == 1:
        return group.exceptions[0]
    others = [e for e in group.exceptions if not isinstance(e, trio.Cancelled)]
    return others[0] if len(others) == 1 else None


def raise_sole(group: BaseExceptionGroup[BaseException]) -> None:
    """Raise the group's :func:`sole_error` as itself, or the group if it has none."""
    error = sole_error(group)
    if error is None:
        raise group
    raise error from None
