"""Plans: what to do about every deployment, and why. Pure: values in, a `Plan` out.

Pairing first (as gitops-engine does): every key that is desired or recorded becomes a triple
(desired, recorded, live); a function over each triple picks the action. Live deployments that
are neither desired nor recorded are not ours and never appear. Ownership rules (DESIGN.md §4):

| desired | recorded | live | action                                            |
|---------|----------|------|---------------------------------------------------|
| yes     | no       | no   | create, `new`                                     |
| yes     | no       | yes  | adopt (error with `--no-adopt`), `adopt`          |
| yes     | yes      | no   | create, `drift: missing`                          |
| yes     | yes      | yes  | update (`manifest changed` or `drift`), or noop   |
| no      | yes      | any  | delete with `--prune` (`orphan`), else noop       |

A live deployment managed by another object (non-empty `object_references`, e.g. one made by an
inference Application) is never adopted, updated or deleted: its change is `managed elsewhere`,
naming the parent. One whose answer cannot be read is `unreadable` if it is ours (desired or
recorded), and a plan warning otherwise. Both block only that deployment (`Reason.is_blocked`):
apply reports it failed and goes on with the others.

With `--selector`, a deployment is in scope when its manifest's labels match; a record is an
orphan only when no manifest (selected or not) names its deployment.

A plan carries no secret: sensitive values are `(sensitive)` in its changes; the executor takes
the real values from the desired state it re-reads (and checks against the plan's fingerprint).

`changes.py` holds what a plan says (actions, reasons, `Change`, `Plan` and its JSON),
`rules.py` the rules of one triple, `make.py` the pairing, the whole-plan checks and the
fingerprint.
"""

from .changes import SUMMARY_KEYS, Action, Change, Plan, PlanError, PlanOptions, Reason
from .make import applied_record, fingerprint, make_plan
from .rules import PRUNE_ANNOTATION, selected, targeted

__all__ = [
    "PRUNE_ANNOTATION",
    "SUMMARY_KEYS",
    "Action",
    "Change",
    "Plan",
    "PlanError",
    "PlanOptions",
    "Reason",
    "applied_record",
    "fingerprint",
    "make_plan",
    "selected",
    "targeted",
]
