"""How every command line of ours ends: ``error: <message>`` and a non-zero exit for a user's mistake, a traceback
for anything else.

Each entry point (``python -m msconv_plugin.inference``, ``.train``, ``.test``, ``.demo`` and ``scripts/*.py``) ends
with ``sys.exit(run(main))``. A user error is an exception our own code raised on purpose: a ``UserError``, or one
of the types we raise to name a bad option, file or input (``ValueError``, ``OSError``, ``KeyError``,
``FloatingPointError``, ``ImportError``) whose innermost frame is in this repository, not in torch, BasicSR or
NumPy. Those print one ``error:`` message (the text it carries) on stderr and exit with status 1. Anything else
keeps its traceback. ``--debug`` on the command line (removed before the entry point parses it) or the environment
variable ``MSCONV_DEBUG=1`` shows the traceback of user errors too.
"""
import os
import os.path as osp
import sys
import traceback

DEBUG_FLAG = '--debug'
DEBUG_ENV = 'MSCONV_DEBUG'
USER_ERROR_EXIT = 1
# What our code raises to name a bad option, file or input.
_USER_ERROR_TYPES = (ValueError, OSError, KeyError, FloatingPointError, ImportError)
# Our code: the package and, next to it in a checkout, scripts/.
_OURS = tuple(osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), folder) + os.sep
              for folder in ('msconv_plugin', 'scripts'))


class UserError(ValueError):
    """A mistake of the user's (option, file, argument) with a message that says what to change."""


def _raised_by_us(error):
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and osp.abspath(frames[-1].filename).startswith(_OURS)


def is_user_error(error):
    """Whether ``error`` is a user's mistake reported on purpose (see the module docstring)."""
    return isinstance(error, UserError) or (isinstance(error, _USER_ERROR_TYPES) and _raised_by_us(error))


def debugging():
    """Whether tracebacks were asked for: ``--debug`` on the command line or ``MSCONV_DEBUG`` set (not 0)."""
    return DEBUG_FLAG in sys.argv[1:] or os.environ.get(DEBUG_ENV, '0') not in ('', '0')


def run(main):
    """Call ``main()`` as a command-line entry point; return its exit status.

    ``--debug`` is taken out of ``sys.argv`` first (so that argparse and BasicSR's option parser never see it).

    Args:
        main (callable): The entry point, called without arguments (it reads ``sys.argv``). It returns an exit
            status (int) or anything else (taken as success).

    Returns:
        int: ``main``'s status, 0 when it returned something else, or ``USER_ERROR_EXIT`` (1) after printing
        ``error: <message>`` for a user error.
    """
    debug = debugging()
    sys.argv[1:] = [arg for arg in sys.argv[1:] if arg != DEBUG_FLAG]
    try:
        status = main()
    except Exception as error:
        if debug or not is_user_error(error):
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error  # KeyError quotes its text
        print(f'error: {message}', file=sys.stderr, flush=True)
        return USER_ERROR_EXIT
    return status if isinstance(status, int) else 0
