"""What a party's backend counted for the party's own calls, and the accelerator time it projects.

A backend keeps running counters (``backend.stats.as_dict()``); a party takes them before and
after each of its metered steps and keeps the difference, so its figures are its own even when
several parties share one backend in one process (``--no-ray``: one instance per backend name).
The accelerator time is read from the counters a projecting backend keeps —
``projected_device_seconds``, ``projected_link_seconds`` and ``projected_accelerator_seconds``
(the ``model`` backend's) — and not from a table of which operation costs what, so whatever
operations a backend projects, and however it maps them onto the device and the link, are
accounted as the backend says.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ACCELERATOR", "DEVICE", "LINK", "add", "counters", "difference", "projection",
           "why_not_projected"]

#: the counters of a backend that projects accelerator time: device and link, and the time the
#: two take together as the backend drives them (they overlap on a board, partly or wholly)
DEVICE, LINK = "projected_device_seconds", "projected_link_seconds"
ACCELERATOR = "projected_accelerator_seconds"


def counters(backend) -> dict[str, float]:
    """The backend's numeric counters now (nested and non-numeric entries left out)."""
    return {k: v for k, v in backend.stats.as_dict().items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


def difference(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """``after - before`` for every counter in ``after`` (a counter new since is counted
    from zero); zeros are kept, so a counter's presence says the backend keeps it."""
    return {k: v - before.get(k, 0) for k, v in after.items()}


def add(total: dict[str, float], part: Mapping[str, float]) -> dict[str, float]:
    """Add ``part``'s counters into ``total`` (in place) and return it."""
    for k, v in part.items():
        total[k] = total.get(k, 0) + v
    return total


def projection(counts: Mapping[str, float]) -> dict | None:
    """Projected device, link and accelerator seconds in ``counts`` (a difference of
    counters), or ``None`` if the backend that counted them projects no device time.

    The accelerator's time is the backend's own ``projected_accelerator_seconds`` where it
    keeps one (how far link and device overlap is the backend's to say); else the larger of
    device and link, the most they can overlap. A backend that projects the device but not the
    link gives ``link_seconds`` ``None`` and the device time alone.
    """
    if DEVICE not in counts:
        return None
    device = float(counts[DEVICE])
    link = float(counts[LINK]) if LINK in counts else None
    accelerator = float(counts[ACCELERATOR]) if ACCELERATOR in counts else \
        max(device, link or 0.0)
    return {"device_seconds": device, "link_seconds": link, "accelerator_seconds": accelerator}


def why_not_projected(role: str, report: Mapping) -> str:
    """Why the ``role``'s backend (its ``backend_report``) gives no projection, in words."""
    if not report:
        return f"the {role} has no backend"
    name = report.get("describe", {}).get("name", "?")
    measured = " (it measures device_busy_seconds on the device instead)" \
        if "device_busy_seconds" in report.get("stats", {}) else ""
    return (f"the {role}'s backend {name!r} projects no accelerator time: its counters have "
            f"no {DEVICE}{measured}")
