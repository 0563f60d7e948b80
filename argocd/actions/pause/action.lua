-- Argo CD resource action "pause" for modelship.dev/ModelDeployment: hold the rollout at the end
-- of its current step. Sets the modelship.dev/paused annotation and touches nothing else.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["modelship.dev/paused"] = "true"
return obj
