"""The options families declare for themselves (``--part``, ``--generator-heads``, ``--tf-layout``), as CLI flags.

A command built with :class:`FamilyOptionsCommand` offers one flag per option any registered family
declares for it (see :class:`ckptkit.converters.families.options.FamilyOption`). The registry is read
when the command's options are first needed (parsing its arguments or printing its help), so
``ckptkit --help`` still imports only click; the values reach the command's callback by name.
"""

from __future__ import annotations

import click

__all__ = ["FamilyOptionsCommand"]


def _click_option(option) -> click.Option:
    kind = click.Choice(list(option.choices)) if option.choices else option.type
    return click.Option([option.flag], type=kind, default=option.default, help=option.help)


class FamilyOptionsCommand(click.Command):
    """A click command with the family-declared options of ``family_command`` inserted after the option
    named ``after`` (so ``--help`` lists them where the command's own options put them)."""

    def __init__(self, *args, family_command: str, after: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.family_command = family_command
        self.after = after
        self._family_params: list[click.Option] | None = None

    def family_params(self) -> list[click.Option]:
        """One click option per declared family option (built once)."""
        if self._family_params is None:
            from ckptkit.converters.families import declared_options

            self._family_params = [_click_option(o) for o in declared_options(self.family_command).values()]
        return self._family_params

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        index = next((i + 1 for i, p in enumerate(params) if p.name == self.after), len(params))
        return params[:index] + self.family_params() + params[index:]

