-- Argo CD action discovery for modelship.dev/ModelDeployment: offers every action, enabling only
-- those the operator would act on now. The rules match `kubectl modelship` (a disabled action here
-- is one the plugin refuses). Argo CD's sandbox has no string or math library.
local actions = {}
local status = obj.status or {}
local annotations = obj.metadata.annotations or {}
local handled = status.handledActions or {}
local target = obj.spec.model.version
local steps = {}
if obj.spec.rollout ~= nil and obj.spec.rollout.canary ~= nil and obj.spec.rollout.canary.steps ~= nil then
  steps = obj.spec.rollout.canary.steps
end

-- The status describes the current spec (otherwise it may be about a rollout being replaced).
local fresh = status.observedGeneration ~= nil and status.observedGeneration == obj.metadata.generation
local phase = status.phase
-- A canary rollout of the spec's version is under way.
local rolling = fresh and status.stableVersion ~= nil and status.canaryVersion == target
  and (phase == "Progressing" or phase == "Paused")
-- Going back to a version that served before skips the steps (the operator's is_rollback).
local revisions = status.revisions or {}
for i = 1, #revisions - 1 do
  local r = revisions[i]
  if r.version == target and (r.outcome == "Promoted" or r.outcome == "Superseded") then
    steps = {}
  end
end
local index = status.currentStepIndex or 0
local step = nil
if rolling and index < #steps then
  step = steps[index + 1]
end
local paused = annotations["modelship.dev/paused"]
local pausedByUser = paused == "true" or paused == "True" or paused == "TRUE"

-- An earlier request the operator has not handled yet: a second one would replace it, not add to it.
local function pending(action)
  local token = annotations["modelship.dev/" .. action]
  return token ~= nil and token ~= "" and token ~= handled[action]
end

-- A promote passes the pause even under a user pause, which then holds the next step.
local waitingForPromote = step ~= nil and step.pause ~= nil and step.pause.duration == nil
  and phase == "Paused"
local retryable = fresh and status.failedVersion ~= nil and status.failedVersion == target

actions["promote"] = {
  ["disabled"] = not (waitingForPromote and not pending("promote")),
  ["displayName"] = "Promote (continue past the pause)",
  ["iconClass"] = "fa fa-fw fa-forward",
}
actions["promote-full"] = {
  ["disabled"] = not (step ~= nil and not pending("promote-full")),
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
