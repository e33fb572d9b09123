# Loaded by wstest's Python (autobahn/run.sh puts this folder on PYTHONPATH): every
# socket that Twisted listens on binds the loopback interface. wstest itself has no
# option for it (autobahn's listenWS binds every interface), and a test server
# reachable from the network for the length of a run is not acceptable.
# Python 2.7 and 3 alike.
try:
    from twisted.internet import posixbase
except ImportError:  # not wstest's interpreter: nothing to do
    posixbase = None

LOOPBACK = "127.0.0.1"


def _is_loopback(interface):
    return interface.startswith("127.") or interface == "::1" or interface == "localhost"


def _loopback_only(name, interface_index):
    original = getattr(posixbase.PosixReactorBase, name)

    def listen(self, *args, **kwargs):
        args = list(args)
        if "interface" in kwargs:
            if not _is_loopback(kwargs["interface"]):
                kwargs["interface"] = LOOPBACK
        elif len(args) > interface_index:
            if not _is_loopback(args[interface_index]):
                args[interface_index] = LOOPBACK
        else:
            kwargs["interface"] = LOOPBACK
        return original(self, *args, **kwargs)

    setattr(posixbase.PosixReactorBase, name, listen)


if posixbase is not None:
    # listenTCP(port, factory, backlog, interface); listenSSL(port, factory,
    # contextFactory, backlog, interface); listenUDP(port, protocol, interface, ...).
    _loopback_only("listenTCP", 3)
    _loopback_only("listenSSL", 4)
    _loopback_only("listenUDP", 2)
