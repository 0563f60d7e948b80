-- Argo CD health check for modelship.dev/ModelDeployment.
-- Runs in Argo CD's sandbox (gopher-lua, Lua 5.1): base and table libraries only, no string or
-- math, so this script sticks to comparisons and concatenation.
local hs = {}
local status = obj.status
local generation = obj.metadata.generation

if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Modelship operator to report status"
  return hs
end

if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Modelship operator to observe generation " .. tostring(generation)
    .. " (status is for generation " .. tostring(status.observedGeneration) .. ")"
  return hs
end

local message = status.message or ""
local phase = status.phase

if phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = message
  return hs
end

if phase == "Paused" then
  hs.status = "Suspended"
  hs.message = message
  return hs
end

if phase == "Healthy" then
  local wanted = nil
  if obj.spec ~= nil and obj.spec.model ~= nil then
    wanted = obj.spec.model.version
  end
  if status.stableVersion ~= nil and status.stableVersion == wanted then
    hs.status = "Healthy"
    hs.message = message
    return hs
  end
  hs.status = "Progressing"
  hs.message = "Version " .. tostring(wanted) .. " is not stable yet (stable: "
    .. tostring(status.stableVersion) .. ")"
  return hs
end

-- "Progressing", or a phase this script does not know yet: not done, not failed.
hs.status = "Progressing"
if message ~= "" then
  hs.message = message
else
  hs.message = "Rollout in progress"
end
return hs
