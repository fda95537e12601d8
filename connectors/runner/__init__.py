"""The connector runner: carry out each hosted system's tasks, report every result.

    python -m connectors.runner [SYSTEM ...]

For each message on ``dsr.tasks.<system>`` the runner parses the ``Task``,
calls the system's connector (retrying a ``RetriableError`` with exponential
backoff and jitter), sends exactly one ``TaskResult`` to ``dsr.results``, and
commits the offset only once that result is acknowledged. Delivery is at least
once: a task may run twice after a crash, and its ``task_id`` is the idempotency key.

Each system has its own lane (threads of its own), so a slow or retrying system
never holds up another one. A lane carries out up to the system's ``concurrency``
tasks at once (1 by default: one at a time, in order), so a system that takes
seconds a call is called side by side instead of one task after another. The main
thread only polls and hands each task to its system's lane; on each turn it waits
once for everything the finished tasks sent to be acknowledged, then commits each
partition up to the last task that finished with every task before it finished
too. A partition more than ``MAX_QUEUED`` tasks behind makes the main thread wait.

A message that is not a valid task, and a task that used up its attempts, also
go to ``dsr.deadletter`` with the error and the original bytes sealed to the pipeline.

A call that takes longer than its system's ``call_timeout_seconds`` is abandoned
(``connectors/calls.py``) and retried like any transient failure, so a hung system
fails its tasks, and its requests complete without it, instead of waiting forever.

Log lines carry request_id, system and kind; never identifiers or record values.

Modules: ``loop`` (poll, hand out, commit), ``execution`` (a task on its connector, with
retries), ``sending`` (results and dead letters, acknowledged), ``membership`` (the
consumer group), ``main`` (the process)."""

from connectors.runner.loop import ConnectorRunner
from connectors.runner.main import main
from connectors.runner.membership import REJOIN_STUCK_S, RejoinStuck
from connectors.runner.sending import producer_config

__all__ = ["REJOIN_STUCK_S", "ConnectorRunner", "RejoinStuck", "main", "producer_config"]
