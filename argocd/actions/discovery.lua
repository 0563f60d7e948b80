-- Argo CD action discovery for modelship.dev/ModelDeployment: offers every action, enabling only
-- those the operator would act on now. The rules match `kubectl modelship` (a disabled action here
-- is one the plugin refuses). Argo CD's sandbox has no string or math library.
local actions = {}
local status = obj.status or {}
local annotations = obj.metadata.annotations or {}
local handled = status.handledActions or {}
local target = obj.spec.model.version
-- What the operator decided about the rollout under way, recorded when it decided it. This script
-- reads those facts and keeps no copy of any rollout rule.
local rollout = status.rollout or {}

-- The status describes the current spec (otherwise it may be about a rollout being replaced).
local fresh = status.observedGeneration ~= nil and status.observedGeneration == obj.metadata.generation
local phase = status.phase
-- A rollout of the spec's version over a stable one is under way.
local rolling = fresh and rollout.kind ~= nil and rollout.kind ~= "First" and rollout.version == target
  and status.canaryVersion == target and (phase == "Progressing" or phase == "Paused")
-- At a canary step (not past the last one, and not a rollback, which has none).
local atStep = rolling and rollout.stepKind ~= nil
local paused = annotations["modelship.dev/paused"]
local pausedByUser = paused == "true" or paused == "True" or paused == "TRUE"

-- An earlier request the operator has not handled yet: a second one would replace it, not add to it.
local function pending(action)
  local token = annotations["modelship.dev/" .. action]
  return token ~= nil and token ~= "" and token ~= handled[action]
end

-- A promote passes the pause even under a user pause, which then holds the next step.
local waitingForPromote = rolling and rollout.waitingForPromote == true
local retryable = fresh and status.failedVersion ~= nil and status.failedVersion == target

actions["promote"] = {
  ["disabled"] = not (waitingForPromote and not pending("promote")),
  ["displayName"] = "Promote (continue past the pause)",
  ["iconClass"] = "fa fa-fw fa-forward",
}
actions["promote-full"] = {
  ["disabled"] = not (atStep and not pending("promote-full")),
  ["displayName"] = "Promote full (skip all remaining steps)",
  ["iconClass"] = "fa fa-fw fa-fast-forward",
}
actions["abort"] = {
  ["disabled"] = not (rolling and not pending("abort")),
  ["displayName"] = "Abort (back to the stable version)",
  ["iconClass"] = "fa fa-fw fa-times-circle",
}
actions["retry"] = {
  ["disabled"] = not (retryable and not pending("retry")),
  ["displayName"] = "Retry the failed version",
  ["iconClass"] = "fa fa-fw fa-redo-alt",
}
actions["pause"] = {
  ["disabled"] = pausedByUser,
  ["displayName"] = "Pause",
  ["iconClass"] = "fa fa-fw fa-pause-circle",
}
actions["resume"] = {
  ["disabled"] = not pausedByUser,
  ["displayName"] = "Resume",
  ["iconClass"] = "fa fa-fw fa-play-circle",
}
return actions
