"""Context builder of the lab form: what ``templates/forms/lab-form.html`` lays out.

JupyterHub asks the controller for the spawner options form and embeds the
HTML fragment in its own ``<form>`` (api.md 4.3). The field names and values
are the contract with the create route: ``image_list`` (a menu reference or
the dropdown sentinel), ``image_dropdown``, ``size``, ``enable_debug`` and
``reset_user_env``. Everything the page shows is decided here, purely, from
the configuration, the user's quota and the image menus the image service
computed; the template only lays it out, HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..config import Config, LabSizeDefinition
from ..models.images import MenuImage
from ..models.lab import DROPDOWN_SENTINEL_VALUE
from ..models.user import NotebookQuota, UserInfo
from .engine import Renderer

__all__ = [
    "LAB_FORM_TEMPLATE",
    "LAB_UNAVAILABLE_TEMPLATE",
    "FormImage",
    "FormSize",
    "LabFormContext",
    "allowed_sizes",
    "build_lab_form_context",
    "render_lab_form",
    "size_fits_quota",
]

LAB_FORM_TEMPLATE = "forms/lab-form.html"
"""The spawner form (api.md 4.3 (b))."""

LAB_UNAVAILABLE_TEMPLATE = "forms/lab-unavailable.html"
"""The page shown instead when the user may not spawn any lab (api.md 4.3 (a))."""


@dataclass(frozen=True, slots=True)
class FormImage:
    """One radio of the image menu: its element id, the reference it submits, its label."""

    id: str
    reference: str
    name: str
    checked: bool


@dataclass(frozen=True, slots=True)
class FormSize:
    """One radio of the size choice: the lowercase size name it submits and its label."""

    value: str
    label: str
    checked: bool


@dataclass(frozen=True, slots=True)
class LabFormContext:
    """Every value of the lab form, ready to lay out.

    ``sentinel`` is the ``image_list`` value meaning "the image chosen in the
    dropdown"; its radio is checked only when no menu image is (an empty menu),
    so the form always submits some image choice.
    """

    menu: tuple[FormImage, ...]
    dropdown: tuple[MenuImage, ...]
    sizes: tuple[FormSize, ...]
    sentinel: str = DROPDOWN_SENTINEL_VALUE

    @property
    def sentinel_checked(self) -> bool:
        return not any(image.checked for image in self.menu)


def size_fits_quota(definition: LabSizeDefinition, quota: NotebookQuota) -> bool:
    """Whether a size's limits are within a notebook quota (both CPU and memory).

    Memory is compared in bytes with the quota's GiB truncated to whole bytes,
    as upstream does; equal counts as within.
    """
    limits = definition.resources.limits
    return limits.memory <= quota.memory_bytes and limits.cpu <= quota.cpu


def allowed_sizes(config: Config, user: UserInfo) -> list[LabSizeDefinition]:
    """The configured sizes the user may pick, in configuration order.

    A user without a notebook quota may pick any size; with one, only the
    sizes within it, and none at all when the quota forbids spawning.
    """
    quota = user.quota.notebook if user.quota is not None else None
    if quota is None:
        return list(config.lab.sizes)
    if not quota.spawn:
        return []
    return [d for d in config.lab.sizes if size_fits_quota(d, quota)]


def build_lab_form_context(
    config: Config,
    user: UserInfo,
    menu: Sequence[MenuImage],
    dropdown: Sequence[MenuImage],
) -> LabFormContext | None:
    """The lab form's values, or None when the user may not spawn any lab.

    ``menu`` and ``dropdown`` are the image service's ``menu()`` and
    ``dropdown()``, in their order. The first menu image is checked; the
    checked size is the configured default when the user may pick it,
    otherwise the first size the user may pick.
    """
    sizes = allowed_sizes(config, user)
    if not sizes:
        return None
    default = config.lab.default_size
    if default not in {d.size for d in sizes}:
        default = sizes[0].size
    return LabFormContext(
        menu=tuple(
            FormImage(
                id=f"image{index}",
                reference=image.reference,
                name=image.name,
                checked=index == 1,
            )
            for index, image in enumerate(menu, start=1)
        ),
        dropdown=tuple(dropdown),
        sizes=tuple(
            FormSize(value=d.size.value, label=d.label, checked=d.size == default) for d in sizes
        ),
    )


def render_lab_form(
    renderer: Renderer,
    config: Config,
    user: UserInfo,
    menu: Sequence[MenuImage],
    dropdown: Sequence[MenuImage],
) -> str:
    """The HTML the lab form route returns: the form, or the unavailable page.

    Both come from ``templates/forms/`` through the renderer's search path, so
    an operator's ``templateDirs`` may replace either page.
    """
    context = build_lab_form_context(config, user, menu, dropdown)
    if context is None:
        return renderer.render_html(LAB_UNAVAILABLE_TEMPLATE, {})
    return renderer.render_html(LAB_FORM_TEMPLATE, {"form": context})
