"""The ModelDeployment API: spec and status as pydantic models.

These models are the single source of truth for the CRD: `modelship.crd` renders the OpenAPI schema
(with its CEL rules) from them, and a unit test fails when `crds/` drifts from what they render.
Field names are camelCase on the wire and snake_case in Python.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

GROUP = "modelship.dev"
VERSION = "v1alpha1"
PLURAL = "modeldeployments"
KIND = "ModelDeployment"
API_VERSION = f"{GROUP}/{VERSION}"

# A child Deployment is named `<name>-<version>` and its pods get a hash suffix of up to 17
# characters; Services are named `<name>`, `<name>-stable` and `<name>-canary` (DNS-1035 labels,
# at most 63 characters). Keeping name + version within this budget keeps every child name valid.
MAX_NAME_PLUS_VERSION = 45
VERSION_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
SHA256_PATTERN = r"^[a-f0-9]{64}$"
URI_SCHEMES = ("file://", "http://", "https://", "pvc://")

# Annotation-driven actions (set by `kubectl modelship` and Argo CD). Each holds a token; the
# operator acts when the token differs from the last one it handled (status.handledActions), so
# an action happens once, and nothing the user keeps in git is ever written.
ACTION_PREFIX = f"{GROUP}/"
ACTIONS = ("promote", "promote-full", "abort", "retry")
ANNOTATION_PAUSED = f"{GROUP}/paused"

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """'1h30m', '90s', '250ms' -> timedelta (DURATION_PATTERN, checked by the CRD, guarantees the shape)."""
    seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def rule(expression: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One CEL validation rule, rendered into `x-kubernetes-validations`."""
    out = {"rule": expression, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


class ApiModel(BaseModel):
    # `extra="ignore"`: an operator older than the CRD must still read objects written by a newer
    # one; the apiserver's structural pruning already drops unknown fields users send.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", use_enum_values=True
    )

    def wire(self) -> dict[str, Any]:
        """The object as the API serves it: camelCase keys, unset optionals left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ModelFormat(StrEnum):
    SKOPS = "skops"
    ONNX = "onnx"
    JOBLIB = "joblib"


S3_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+$"


class SecretName(ApiModel):
    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="Name of a Secret in the ModelDeployment's namespace.",
    )


class S3Source(ApiModel):
    """Where an s3:// model lives; credentials come from the named Secret, else the pod's identity."""

    endpoint: str | None = Field(
        default=None,
        max_length=512,
        description="URL of an S3-compatible API (default: AWS S3).",
        json_schema_extra=validations(
            rule(
                "self.startsWith('http://') || self.startsWith('https://')",
                "spec.model.s3.endpoint must be an http:// or https:// URL",
            )
        ),
    )
    region: str | None = Field(default=None, max_length=64, pattern=r"^[a-z0-9-]+$")
    force_path_style: bool | None = Field(
        default=None,
        description="true: endpoint/bucket/key (most S3-compatible stores); false: bucket.endpoint/key.",
    )
    credentials_secret: SecretName | None = Field(
        default=None,
        description="A Secret with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN "
        "for temporary credentials), given to the serving container as environment variables; the operator "
        "never reads it. Unset: the pod's own identity (web identity / IRSA via its service account, or "
        "instance metadata).",
    )


class Model(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "!has(self.s3) || self.uri.startsWith('s3://')",
                "spec.model.s3 applies only to an s3:// spec.model.uri",
                ".s3",
            )
        )
    )
    version: str = Field(
        min_length=1,
        max_length=40,
        pattern=VERSION_PATTERN,
        description="The model version. Each version runs in its own Deployment `<name>-<version>`, so it "
        "must be lowercase letters, digits, '-' or '.', starting and ending with a letter or digit.",
    )
    uri: str = Field(
        min_length=1,
        max_length=2048,
        description="Where the serving pods load the model from: file:// (inside the image), "
        "http(s)://, pvc://<claim>/<path> (the claim is mounted read-only) or s3://<bucket>/<key> (see s3); "
        "s3://<bucket>/<prefix>/ is a model directory: every object under the prefix.",
        json_schema_extra=validations(
            rule(
                "self.startsWith('file://') || self.startsWith('http://') || self.startsWith('https://')"
                " || self.matches('^pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/.+$')"
                f" || self.matches('{S3_URI_PATTERN}')",
                "spec.model.uri must start with file://, http://, https://, pvc://<claim>/<path> "
                "or s3://<bucket>/<key>",
            )
        ),
    )
    s3: S3Source | None = Field(
        default=None, description="Endpoint, region, addressing and credentials for an s3:// uri."
    )
    format: ModelFormat = Field(
        default=ModelFormat.SKOPS,
        description="Serialization format: skops (secure, the default), onnx, or joblib (runs pickle).",
    )
    sha256: str | None = Field(
        default=None,
        pattern=SHA256_PATTERN,
        description="Optional hex SHA-256 digest of the model file; the server refuses a file that differs. "
        "For a model directory (an s3:// uri ending in '/'), the SHA-256 of `sha256sum`'s lines for its files "
        "sorted by path (see the serving image's README).",
    )


QUANTITY_PATTERN = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
# A Kubernetes quantity ("500m", "1Gi", 2): the same int-or-string schema Pod specs use, so a bad
# value is refused when the ModelDeployment is applied rather than when its Deployment is.
Quantity = Annotated[
    int | str,
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]


class Resources(ApiModel):
    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None


class EnvVar(ApiModel):
    name: str = Field(min_length=1, max_length=256)
    value: str | None = None
    value_from: dict[str, Any] | None = None


class SecretRef(ApiModel):
    name: str = Field(min_length=1, max_length=253)


class Serving(ApiModel):
    image: str | None = Field(
        default=None, max_length=512, description="Serving image; the operator's default when unset."
    )
    port: int = Field(default=8080, ge=1, le=65535, description="Container port of the model server.")
    resources: Resources | None = Field(
        default=None, description="Container resources (requests/limits), as in a Pod spec."
    )
    env: list[EnvVar] | None = Field(
        default=None, max_length=64, description="Extra environment variables for the server container."
    )
    pod_labels: dict[str, str] | None = Field(default=None, description="Labels added to serving pods.")
    pod_annotations: dict[str, str] | None = Field(
        default=None, description="Annotations added to serving pods."
    )
    node_selector: dict[str, str] | None = None
    tolerations: list[dict[str, Any]] | None = Field(default=None, max_length=64)
    affinity: dict[str, Any] | None = None
    service_account_name: str | None = Field(default=None, max_length=253)
    image_pull_secrets: list[SecretRef] | None = Field(default=None, max_length=16)


class Pause(ApiModel):
    duration: str | None = Field(
        default=None,
        pattern=DURATION_PATTERN,
        max_length=32,
        description="How long to pause, e.g. 30s, 5m, 1h30m. Without it, wait for a promote.",
    )


# -- metric gates: analyses of the canary, measured by the operator from Prometheus ---------------
# Checks appear both in analysis steps and in the background analysis, so their CEL messages name
# the field relative to spec.rollout.canary ("...analysis.checks[].successRate").
_ANALYSIS = "spec.rollout.canary (steps[].analysis or analysis)"
_CHECKS = f"{_ANALYSIS}.checks[]"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# How many measurements of each check status keeps; the counters keep the totals.
MEASUREMENT_HISTORY = 10


class SuccessRateCheck(ApiModel):
    """The canary's share of answers that were not errors (4xx count as errors: a model that rejects
    real clients' inputs is a failed canary), from modelship-server's own request counter."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "has(self.minRate) || has(self.maxDropVsStable)",
                f"{_CHECKS}.successRate must set minRate, maxDropVsStable or both",
            )
        )
    )
    min_rate: float | None = Field(default=None, ge=0, le=1, description="Fail below this rate, e.g. 0.99.")
    max_drop_vs_stable: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Fail when the canary's rate is below the stable version's rate, over the same "
        "window, minus this, e.g. 0.01.",
    )
    min_requests: int = Field(
        default=20,
        ge=1,
        le=1_000_000,
        description="Fewer requests to the canary in the interval make the measurement inconclusive.",
    )


class LatencyCheck(ApiModel):
    """A quantile of the canary's request duration, from modelship-server's histogram."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "has(self.maxMilliseconds) || has(self.maxRatioVsStable)",
                f"{_CHECKS}.latency must set maxMilliseconds, maxRatioVsStable or both",
            )
        )
    )
    quantile: float = Field(default=0.99, gt=0, lt=1, description="e.g. 0.99 for p99.")
    max_milliseconds: float | None = Field(default=None, gt=0, description="Fail above this quantile.")
    max_ratio_vs_stable: float | None = Field(
        default=None,
        gt=0,
        description="Fail when the canary's quantile exceeds this times the stable version's quantile "
        "over the same window, e.g. 1.5.",
    )
    min_requests: int = Field(
        default=20,
        ge=1,
        le=1_000_000,
        description="Fewer requests to the canary in the interval make the measurement inconclusive.",
    )


class PrometheusCheck(ApiModel):
    """A PromQL query and bounds on its value."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "has(self.min) || has(self.max)",
                f"{_CHECKS}.prometheus must set min, max or both",
            )
        )
    )
    query: str = Field(
        min_length=1,
        max_length=4096,
        description="PromQL returning exactly one series or a scalar. {{namespace}}, {{name}}, "
        "{{canaryVersion}}, {{stableVersion}} and {{interval}} are replaced before it runs; an empty, "
        "NaN or multi-series result is never a pass.",
    )
    min: float | None = Field(default=None, description="Fail below this value.")
    max: float | None = Field(default=None, description="Fail above this value.")


class Check(ApiModel):
    """One check of an analysis: exactly one of successRate, latency or prometheus."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "(has(self.successRate) ? 1 : 0) + (has(self.latency) ? 1 : 0)"
                " + (has(self.prometheus) ? 1 : 0) == 1",
                f"each check of {_CHECKS} must set exactly one of successRate, latency or prometheus",
            )
        )
    )
    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL_PATTERN,
        description="Names the check in status, Events and metrics (a DNS-1123 label).",
    )
    dry_run: bool = Field(default=False, description="Measured and reported, but never decides the analysis.")
    success_rate: SuccessRateCheck | None = None
    latency: LatencyCheck | None = None
    prometheus: PrometheusCheck | None = None

    def kind(self) -> str:
        if self.success_rate is not None:
            return "successRate"
        return "latency" if self.latency is not None else "prometheus"


class Analysis(ApiModel):
    """Checks measured every interval. Argo Rollouts' limits, with two differences: a step analysis
    passes only on `count` Successful measurements of each check (errors and missing data never add
    up to a pass), and an inconclusive result holds the rollout (Paused) instead of aborting it."""

    interval: str = Field(
        default="30s",
        pattern=DURATION_PATTERN,
        max_length=32,
        description="Time between measurements; each measurement covers the interval before it.",
        json_schema_extra=validations(
            rule(
                "duration(self) >= duration('1s')",
                f"{_ANALYSIS}.interval must be at least 1s",
            )
        ),
    )
    count: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Successful measurements of each check before a step analysis passes (the "
        "background analysis keeps measuring until promotion).",
    )
    failure_limit: int = Field(
        default=0, ge=0, le=100, description="Failed measurements of a check tolerated; one more fails."
    )
    inconclusive_limit: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Inconclusive measurements (too little traffic, no data) of a check tolerated; one "
        "more holds the rollout (Paused) until a promote, retry or abort.",
    )
    consecutive_error_limit: int = Field(
        default=4,
        ge=0,
        le=100,
        description="Consecutive query errors of a check tolerated; one more holds the rollout like an "
        "inconclusive result. Errors never count towards a pass.",
    )
    wait_for_data: bool = Field(
        default=False,
        description="Inconclusive measurements and query errors neither count nor pass: the rollout "
        "holds (Paused, saying what is missing) and the analysis keeps measuring until data arrives.",
    )
    checks: list[Check] = Field(
        min_length=1,
        max_length=16,
        json_schema_extra=validations(
            rule(
                "self.all(c, size(self.filter(d, d.name == c.name)) == 1)",
                f"{_CHECKS}.name must be unique within an analysis",
            )
        ),
    )


class BackgroundAnalysis(Analysis):
    """An analysis that runs beside the steps, from `startingStep` until promotion."""

    starting_step: int = Field(
        default=0,
        ge=0,
        le=49,
        description="Index of the step (0-based) from which it runs; a failure rolls back.",
    )


class Step(ApiModel):
    """One canary step: exactly one of setWeight, pause or analysis."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "(has(self.setWeight) ? 1 : 0) + (has(self.pause) ? 1 : 0)"
                " + (has(self.analysis) ? 1 : 0) == 1",
                "each step of spec.rollout.canary.steps must set exactly one of setWeight, pause or analysis",
            )
        )
    )
    set_weight: int | None = Field(
        default=None, ge=0, le=100, description="Percentage of traffic for the canary."
    )
    pause: Pause | None = None
    analysis: Analysis | None = Field(
        default=None, description="Measure the canary at its current weight until it passes or fails."
    )

    @property
    def kind(self) -> StepKind:
        if self.set_weight is not None:
            return StepKind.SET_WEIGHT
        return StepKind.ANALYSIS if self.analysis is not None else StepKind.PAUSE

    def describe(self) -> str:
        if self.set_weight is not None:
            return f"setWeight {self.set_weight}"
        if self.analysis is not None:
            return "analysis of " + ", ".join(c.name for c in self.analysis.checks)
        duration = self.pause.duration if self.pause else None
        return f"pause {duration}" if duration else "pause until promoted"


class ParentRef(ApiModel):
    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = Field(default=None, max_length=63)
    section_name: str | None = Field(default=None, max_length=253)


class GatewayAPIRouting(ApiModel):
    parent_refs: list[ParentRef] = Field(min_length=1, max_length=16)


class TrafficRouting(ApiModel):
    gateway_api: GatewayAPIRouting | None = Field(
        default=None,
        alias="gatewayAPI",
        description="Exact weights through an HTTPRoute attached to these parent Gateways.",
    )


class Canary(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "!has(self.analysis) || self.analysis.startingStep < size(self.steps)",
                "spec.rollout.canary.analysis.startingStep must be the index of one of "
                "spec.rollout.canary.steps",
                ".analysis.startingStep",
            )
        )
    )
    steps: list[Step] = Field(
        default_factory=list,
        max_length=50,
        json_schema_extra=validations(
            rule(
                "self.filter(s, has(s.setWeight)).map(s, s.setWeight).isSorted()",
                "spec.rollout.canary.steps: setWeight values must not decrease from one step to the next",
            )
        ),
    )
    traffic_routing: TrafficRouting | None = None
    analysis: BackgroundAnalysis | None = Field(
        default=None,
        description="Checks measured from steps[startingStep] until promotion; a failure rolls back.",
    )
    max_surge_percent: int = Field(
        default=25,
        ge=0,
        le=100,
        description="Without a router: how many pods above spec.replicas a rollout may run at once, as a "
        "percentage of spec.replicas (rounded up, at least one).",
    )


class Rollout(ApiModel):
    progress_deadline_seconds: int = Field(
        default=600,
        ge=1,
        le=86400,
        description="How long a new version may take to become Ready before the rollout is aborted.",
    )
    canary: Canary | None = None


class ModelDeploymentSpec(ApiModel):
    model: Model
    replicas: int = Field(default=1, ge=0, le=1000)
    serving: Serving = Field(default_factory=Serving)
    rollout: Rollout = Field(default_factory=Rollout)
    revision_history_limit: int = Field(
        default=5, ge=0, le=50, description="How many previous versions to keep, scaled to zero."
    )


class Phase(StrEnum):
    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    DEGRADED = "Degraded"


class StepKind(StrEnum):
    """One entry per kind of canary step: a new kind of step adds a value here and a handler."""

    SET_WEIGHT = "SetWeight"
    PAUSE = "Pause"
    ANALYSIS = "Analysis"


class RolloutKind(StrEnum):
    FIRST = "First"  # nothing served before: full size at once, nothing to roll back to
    SWITCH = "Switch"  # no canary steps: full size beside stable, then the Service moves
    CANARY = "Canary"  # walks spec.rollout.canary.steps
    ROLLBACK = "Rollback"  # back to a kept version that served before: skips the steps


class RolloutFacts(ApiModel):
    """What the operator decided about the rollout under way, written when it decided it. Later
    passes, `kubectl modelship` and the Argo CD scripts read these; none re-derives them."""

    kind: RolloutKind = Field(description="Decided once, when the rollout started.")
    version: str = Field(description="The version this rollout brings in.")
    from_version: str | None = Field(default=None, description="The stable version when it started.")
    proven_by_revision: int | None = Field(
        default=None,
        description="Rollback: the earlier revision in which this version served (the decision's input).",
    )
    kept_deployment_found: bool = Field(
        default=False,
        description="Whether the version's Deployment existed when the kind was decided (the other input).",
    )
    step_kind: StepKind | None = Field(
        default=None, description="Kind of the current canary step; unset past the last step."
    )
    step_ends_at: datetime | None = Field(default=None, description="When the current timed pause ends.")
    waiting_for_promote: bool = Field(
        default=False, description="Parked at a pause without duration: only a promote moves on."
    )


class Outcome(StrEnum):
    PROGRESSING = "Progressing"
    PROMOTED = "Promoted"
    ABORTED = "Aborted"
    ROLLED_BACK = "RolledBack"
    SUPERSEDED = "Superseded"
    FAILED = "Failed"


class Revision(ApiModel):
    revision: int = Field(ge=1)
    version: str
    uri: str
    format: ModelFormat = ModelFormat.SKOPS
    sha256: str | None = None
    # Kept so a deleted kept version of an s3:// model is recreated with its endpoint and Secret name.
    s3: S3Source | None = None
    deployed_at: datetime
    finished_at: datetime | None = None
    outcome: Outcome = Outcome.PROGRESSING
    reason: str | None = Field(default=None, description="Why the revision ended as it did (CamelCase).")
    message: str | None = Field(default=None, max_length=1024)


class Condition(ApiModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    observed_generation: int | None = None
    last_transition_time: datetime


class Verdict(StrEnum):
    """What one measurement says. Only Successful ever counts towards a pass."""

    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"  # too little traffic, no data: not yet known
    ERROR = "Error"  # the query failed: nothing was learned


class Measurement(ApiModel):
    check: str
    verdict: Verdict
    value: float | None = None
    threshold: str = Field(default="", description='What it was held against, e.g. ">= 0.99".')
    message: str = Field(default="", description="One line: why this verdict, or what is missing.")
    measured_at: datetime = Field(description="The end of the measured window (one interval long).")
    dry_run: bool = False


class AnalysisPhase(StrEnum):
    RUNNING = "Running"
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"  # holds the rollout until a promote, retry or abort
    SKIPPED = "Skipped"  # promoted past by a user


class CheckRecord(ApiModel):
    """One check of a run: totals since the run started and its last measurements."""

    name: str
    dry_run: bool = False
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    last_measured_at: datetime | None = Field(
        default=None, description="The next measurement is due one interval later, also after a restart."
    )
    measurements: list[Measurement] = Field(
        default_factory=list, description=f"The last {MEASUREMENT_HISTORY}, oldest first."
    )


class AnalysisRun(ApiModel):
    """An analysis of the current rollout (or of the last one, until the next starts)."""

    name: str = Field(description='"step-<n>" for the analysis of step n (1-based), or "background".')
    step_index: int | None = Field(default=None, description="The step's index; unset for background.")
    phase: AnalysisPhase = AnalysisPhase.RUNNING
    message: str | None = None
    started_at: datetime
    finished_at: datetime | None = None
    checks: list[CheckRecord] = Field(default_factory=list)


class ModelDeploymentStatus(ApiModel):
    observed_generation: int | None = None
    phase: Phase | None = None
    message: str | None = None
    stable_version: str | None = None
    canary_version: str | None = None
    canary_weight: int | None = Field(default=None, ge=0, le=100)
    current_step_index: int | None = Field(default=None, ge=0)
    steps_hash: str | None = Field(
        default=None, description="Hash of the canary steps the current rollout started with."
    )
    progress_started_at: datetime | None = Field(
        default=None, description="When the current rollout began; the progress deadline counts from here."
    )
    step_started_at: datetime | None = Field(
        default=None, description="When the current canary step began (timed pauses count from here)."
    )
    failed_version: str | None = Field(
        default=None, description="A version that failed to roll out; it is not retried until spec changes."
    )
    handled_actions: dict[str, str] = Field(
        default_factory=dict,
        description="The last value of each modelship.dev/<action> annotation the operator acted on.",
    )
    rollout: RolloutFacts | None = Field(
        default=None, description="The rollout under way, as decided when it started; unset at rest."
    )
    analysis_runs: list[AnalysisRun] = Field(
        default_factory=list,
        description="The analyses of the current rollout, each check's verdict counts and last "
        "measurements; kept after the rollout ends until the next one starts.",
    )
    replicas: int | None = None
    ready_replicas: int | None = None
    revisions: list[Revision] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)


class ObjectMeta(ApiModel):
    name: str
    namespace: str = "default"
    uid: str = ""
    generation: int = 0
    # The version a pass read: its status write is refused (409) if the object changed since.
    resource_version: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class ModelDeployment(ApiModel):
    api_version: str = API_VERSION
    kind: str = KIND
    metadata: ObjectMeta
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus = Field(default_factory=ModelDeploymentStatus)
