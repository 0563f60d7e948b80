"""`kubectl modelship`: the command-line control surface of a ModelDeployment's rollout.

`actions` and `render` are pure (an object in, a patch or text out) and carry the decisions;
`kube` is the only module here that talks to the API; `modelship.kubectl_plugin` parses the
command line and joins them.
"""
