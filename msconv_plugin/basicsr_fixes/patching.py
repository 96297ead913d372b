"""The one place where msconv_plugin changes BasicSR: every fix replaces an attribute through ``replace``, which
remembers BasicSR's own value so that ``shipped`` can call it, ``replaced`` can list it and ``restore`` can put it
back. Nothing in site-packages is edited.
"""
# (owner, name) -> BasicSR's own value, in the order the fixes replaced them.
_SHIPPED = {}


def replace(owner, name, new):
    """``setattr(owner, name, new)``, remembering the value it had first (see ``shipped`` and ``restore``)."""
    _SHIPPED.setdefault((owner, name), getattr(owner, name))
    setattr(owner, name, new)


def shipped(owner, name):
    """The value ``owner.name`` had before ``replace`` changed it (BasicSR's own function)."""
    return _SHIPPED.get((owner, name), getattr(owner, name))


def replaced():
    """What is replaced now, as ``'<module>.<name>'`` / ``'<module>.<class>.<name>'``, in the order of replacement."""
    return [f'{owner.__module__}.{owner.__qualname__}.{name}' if isinstance(owner, type) else f'{owner.__name__}.{name}'
            for owner, name in _SHIPPED]


def restore():
    """Put back BasicSR's own value of everything ``replace`` changed, newest first."""
    for (owner, name), value in reversed(list(_SHIPPED.items())):
        setattr(owner, name, value)
    _SHIPPED.clear()
