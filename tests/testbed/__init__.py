"""The real components the tests run against, started on 127.0.0.1 only.

`cluster.py` starts a Kubernetes control plane with kwok nodes, `registry.py` an MLflow
tracking server with the model registry; `binaries.py` builds what they need from Go
modules. pytest starts them through `tests/conftest.py`; `python -m tests.testbed up`
starts the same for debugging by hand.
"""
