"""The `dcops` command: one sub-app per noun, and the one place errors become exit codes."""

from __future__ import annotations

import errno
import inspect
import os
import re
import sys

import typer
from typer.core import TyperGroup

try:  # Typer from 0.22 on carries its own copy of click
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older Typer on click itself
    from click.exceptions import NoArgsIsHelpError, UsageError

from dcops.cli import (audit, capacity, catalogue, cluster, db, inventory, maintenance, metrics, ministry, portal,
                       probe, programme, provision, report, request)
from dcops.cli import incident, outbox
from dcops.cli import external
from dcops.cli import status
from dcops.cli.demo import demo_command
from dcops.cli.serve import serve_command
from dcops.errors import DcopsError, ValidationError


class OneLineUsageError(UsageError):
    """click's usage error told in the one line every dcops error takes (click prints three)."""

    def show(self, file=None) -> None:
        where = f" (see `{self.ctx.command_path} --help`)" if self.ctx is not None else ""
        from dcops.errors import in_our_words

        message = in_our_words(" ".join(self.format_message().split()))
        # An argument is named as in the usage line (SLUG), not by its Python name ('slug').
        message = re.sub(r"Invalid value for '([a-z_]+)'", lambda m: f"Invalid value for {m.group(1).upper()}",
                         message)
        typer.echo(f"dcops: error: {message}{where}", err=True)


def _one_line(error: UsageError) -> UsageError:
    if isinstance(error, NoArgsIsHelpError):  # a bare `dcops programme`: its help, as click prints it
        return error
    # format_message, not message: it names the option and the choices ("Did you mean --output?").
    return OneLineUsageError(error.format_message(), error.ctx)


class DcopsGroup(TyperGroup):
    """The root command group: turns a DcopsError from any command into its exit code, and a
    usage mistake (an unknown option, a bad value) into one line, exit 2."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except (OneLineUsageError, NoArgsIsHelpError):
            raise
        except UsageError as error:
            raise _one_line(error) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (OneLineUsageError, NoArgsIsHelpError):
            raise
        except UsageError as error:
            raise _one_line(error) from None
        except ValidationError as error:
            for line in error.lines():
                typer.echo(f"dcops: error: {line}", err=True)
            raise typer.Exit(error.exit_code) from None
        except DcopsError as error:
            typer.echo(f"dcops: error: {error}", err=True)
            raise typer.Exit(error.exit_code) from None


app = typer.Typer(
    name="dcops",
    cls=DcopsGroup,
    help=(
        "Operations tool of the national government data centre: the inventory of hosted "
        "programmes, their capacity, hosting requests, provisioning, health and SLA reports.\n\n"
        "Example: dcops programme list --ministry moes"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(db.app, name="db")
app.add_typer(inventory.app, name="inventory")
app.add_typer(programme.app, name="programme")
app.add_typer(ministry.app, name="ministry")
app.add_typer(cluster.app, name="cluster")
app.add_typer(catalogue.app, name="catalogue")
app.add_typer(request.app, name="request")
app.add_typer(provision.app, name="provision")
app.add_typer(probe.app, name="probe")
app.add_typer(maintenance.app, name="maintenance")
app.add_typer(report.app, name="report")
app.add_typer(capacity.app, name="capacity")
app.add_typer(audit.app, name="audit")
app.add_typer(metrics.app, name="metrics")
app.add_typer(outbox.app, name="outbox")
app.add_typer(portal.app, name="portal")
app.add_typer(status.app, name="status")
app.add_typer(incident.app, name="incident")
app.add_typer(external.app, name="external")


app.command("serve")(serve_command)
app.command("demo")(demo_command)


def _print_version(value: bool) -> None:
    # Eager, so it answers while the arguments are parsed, before click asks for a command.
    if value:
        from dcops import __version__

        typer.echo(f"dcops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                 callback=_print_version, expose_value=True),
) -> None:
    """The root of every command."""


# Help is wrapped to 80 columns; an example must not be cut inside a token (a path, a quoted
# reason), so its paragraph is laid out here, one token at a time, with shell continuations.
HELP_WIDTH = 76
_TOKEN = re.compile(r"""(?:"[^"]*"|'[^']*'|\S)+""")


def keep_example_whole(help_text: str | None) -> str | None:
    """A command's help with its "Example:" paragraph laid out by tokens, not rewrapped by click."""
    if not help_text or "Example:" not in help_text:
        return help_text
    paragraphs = help_text.split("\n\n")
    for index, paragraph in enumerate(paragraphs):
        if not paragraph.startswith("Example:"):
            continue
        lines, current = [], ""
        for token in _TOKEN.findall(paragraph):
            if current and len(current) + 1 + len(token) > HELP_WIDTH:
                lines.append(current + " \\")
                current = "    " + token
            else:
                current = f"{current} {token}" if current else token
        lines.append(current)
        paragraphs[index] = "\b\n" + "\n".join(lines)
    return "\n\n".join(paragraphs)


def _lay_out_examples(typer_app: typer.Typer) -> None:
    for info in typer_app.registered_commands:
        info.help = keep_example_whole(info.help if info.help is not None else inspect.getdoc(info.callback))
    for group in typer_app.registered_groups:
        _lay_out_examples(group.typer_instance)


_lay_out_examples(app)


def _quiet_stdout() -> None:
    """Point standard output at /dev/null, so the interpreter's last flush at exit fails no more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main() -> None:
    """Entry point of the `dcops` console script."""
    import gc

    code: int | str | None = 0
    try:
        try:
            app(prog_name="dcops")
        except SystemExit as done:
            code = done.code
        sys.stdout.flush()
    except OSError as error:
        # Standard output closed (a pager quit) or full: nothing more can be said there.
        if error.errno not in (errno.EPIPE, errno.ENOSPC, errno.EIO, errno.EBADF, errno.EDQUOT):
            raise
        _quiet_stdout()
        if error.errno != errno.EPIPE:
            print(f"dcops: error: cannot write to standard output: {error.strerror}", file=sys.stderr)
        code = code or 1
    finally:
        # The interpreter's last collection at exit walks every object the command made
        # (10,000 programmes: ~60 ms) only to find nothing cyclic; frozen objects are skipped.
        gc.freeze()
    sys.exit(code)
