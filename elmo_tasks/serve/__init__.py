"""``elmo-tasks serve``: the biLM and trained task models over HTTP (FastAPI + uvicorn, the ``serve`` extra).

One file per part, read top to bottom in this order:

* ``limits.py``: the server's bounds (``Limits``) and the bounded reading of a request body;
* ``payloads.py``: request bodies checked into work items, answers encoded (JSON or base64);
* ``batcher.py``: the queue and the one worker thread that owns the models and runs their batches;
* ``models.py``: what the worker loads (the biLM's ``Embedder``, ``TaskModel``s) and how it runs a batch;
* ``metrics.py``: the Prometheus metrics;
* ``app.py``: the routes, authentication and JSON errors (``create_app``);
* ``lifecycle.py``: uvicorn with SIGTERM draining (``run_server``);
* ``static/``: the demo page at ``/`` (plain HTML and JavaScript, no build step).

The server's promise: an answer equals what ``Embedder`` / ``TaskModel`` gives for that input
alone (the biLM is stateless), whatever else shared its batch.
"""
