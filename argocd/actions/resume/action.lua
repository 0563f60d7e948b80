-- Argo CD resource action "resume" for modelship.dev/ModelDeployment: release a paused rollout.
-- Removes the modelship.dev/paused annotation and touches nothing else.
local annotations = obj.metadata.annotations
if annotations == nil then
  return obj
end
annotations["modelship.dev/paused"] = nil
-- Argo CD turns the object back into JSON, where an empty Lua table becomes [] and is then
-- replaced by the original map, so emptying the annotations would undo the removal. When the
-- pause annotation was the only one, set it to "false" instead: the operator reads only "true".
if next(annotations) == nil then
  annotations["modelship.dev/paused"] = "false"
end
return obj
