-- Argo CD resource action for modelship.dev/ModelDeployment, shared by promote, promote-full, abort
-- and retry: argocd/render.py renders one script per action with `action` set. It writes a fresh
-- token to the modelship.dev/<action> annotation and touches nothing else; the operator acts once
-- on a token that differs from status.handledActions[<action>].
local action = "__ACTION__"
-- Argo CD's safe os library (time, date) is reachable only through require: there is no global os.
local os = require("os")
local key = "modelship.dev/" .. action
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local handled = nil
if obj.status ~= nil and obj.status.handledActions ~= nil then
  handled = obj.status.handledActions[action]
end
local current = obj.metadata.annotations[key]
local base = "argocd-" .. os.date("!%Y%m%dT%H%M%SZ")
local token = base
local n = 0
while token == handled or token == current do
  n = n + 1
  token = base .. "-" .. n
end
obj.metadata.annotations[key] = token
return obj
