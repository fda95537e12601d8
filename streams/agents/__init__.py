"""The stream processors, as plain handler functions of a ``Pipeline`` context;
``streams.app`` wires them to Faust agents. A request's path, in order:

1. ``intake``: the request event is parsed (``services.parsing``), the legal rules
   applied (``services.rules``), recorded in the ledger, and held or released.
2. ``fanout``: the first tasks are planned (``streams.planning``: the resolve phase's
   lookups, or the actions) and sent, one a system, to ``dsr.tasks.<system>``.
3. The runner (``connectors.runner``) does each task in its system and sends a result.
4. ``aggregate``: results are decoded (``decode``), recorded a batch at a time with
   what the lookups found (one transaction), and each request advanced: the next wave
   planned from its identity graph, or,
   when nothing is left, ``respond``.
5. ``respond``: the response built from the outcomes, the request completed once
   (the ledger queues the response), and the response sent (``streams.outbox``).
6. ``notices``: the principal told what happened (``services.notify``).

Beside the path: ``decisions`` (an operator's refusal, extension or release) and
``provisions`` (records of provision to and receipt from third parties).
"""
