"""Load tests: locust users driven in-process (headless, bounded) against Django's live server.

Importing locust monkey-patches the standard library with gevent unless told not to. The test process also
runs the live server's threads, database connections and the subprocesses of the end-to-end fixtures, which
must stay on real threads and sockets, and it runs the rest of the suite after these tests: so locust is told
to leave the process alone. Its FastHttpUser speaks through gevent's own sockets and needs no patching.
"""
import os

os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")
