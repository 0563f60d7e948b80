// Command argocd-lua runs Modelship's argocd-cm Lua through Argo CD's own engine: the settings
// manager that parses argocd-cm, util/lua's health, discovery and action code (gopher-lua, Argo
// CD's library set, its empty-table fix-up), and the merge patch the API server sends after an
// action. hack/build-argocd.sh builds it in the same module graph as the pinned argocd binary, so
// what it answers is what that Argo CD does.
//
//	argocd-lua ARGOCD_CM_YAML <requests.json >results.json
//
// requests.json is a list of {"op": "health"|"discovery"|"action", "action": NAME, "object": {...}};
// results.json is a list of the same length: {"health": {...}} or {"actions": [...]} or
// {"object": {...}, "patch": {...}}, or {"error": "..."} when Argo CD refused.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
	"github.com/argoproj/gitops-engine/pkg/health"
	jsonpatch "github.com/evanphx/json-patch"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"
)

type request struct {
	Op     string         `json:"op"`
	Action string         `json:"action,omitempty"`
	Object map[string]any `json:"object"`
}

type result struct {
	Health  any             `json:"health,omitempty"`
	Actions any             `json:"actions,omitempty"`
	Object  map[string]any  `json:"object,omitempty"`
	Patch   json.RawMessage `json:"patch,omitempty"`
	Error   string          `json:"error,omitempty"`
}

// overrides parses argocd-cm exactly as a running Argo CD does: through its settings manager,
// fed the ConfigMap the way `argocd admin settings --argocd-cm-path` feeds it.
func overrides(ctx context.Context, path string) (lua.ResourceHealthOverrides, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(data, &cm); err != nil {
		return nil, err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "argocd-secret"},
		Data:       map[string][]byte{"server.secretkey": []byte("unused")},
	}
	for _, obj := range []metav1.Object{&cm, secret} {
		obj.SetNamespace("argocd")
		labels := obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels["app.kubernetes.io/part-of"] = "argocd"
		obj.SetLabels(labels)
	}
	manager := settings.NewSettingsManager(ctx, fake.NewClientset(&cm, secret), "argocd")
	if err := manager.ResyncInformers(); err != nil {
		return nil, err
	}
	return manager.GetResourceOverrides()
}

func run(vm lua.VM, req request) (result, error) {
	obj := &unstructured.Unstructured{Object: req.Object}
	switch req.Op {
	case "health":
		// gitops-engine's entry point, as the application controller calls it.
		status, err := health.GetResourceHealth(obj, lua.ResourceHealthOverrides(vm.ResourceOverrides))
		if err != nil {
			return result{}, err
		}
		if status == nil {
			return result{}, fmt.Errorf("no health check configured for %s", obj.GroupVersionKind())
		}
		return result{Health: status}, nil
	case "discovery":
		scripts, err := vm.GetResourceActionDiscovery(obj)
		if err != nil {
			return result{}, err
		}
		actions, err := vm.ExecuteResourceActionDiscovery(obj, scripts)
		if err != nil {
			return result{}, err
		}
		return result{Actions: actions}, nil
	case "action":
		// As server/application RunResourceAction: the live object as JSON, the action run on it,
		// and the merge patch between the two, which is what reaches the apiserver.
		liveBytes, err := json.Marshal(obj)
		if err != nil {
			return result{}, err
		}
		action, err := vm.GetResourceAction(obj, req.Action)
		if err != nil {
			return result{}, err
		}
		impacted, err := vm.ExecuteResourceAction(obj, action.ActionLua, nil)
		if err != nil {
			return result{}, err
		}
		if len(impacted) != 1 || impacted[0].K8SOperation != lua.PatchOperation {
			return result{}, fmt.Errorf("action %s: expected one patched object, got %d", req.Action, len(impacted))
		}
		newObj := impacted[0].UnstructuredObj
		newBytes, err := json.Marshal(newObj)
		if err != nil {
			return result{}, err
		}
		patch, err := jsonpatch.CreateMergePatch(liveBytes, newBytes)
		if err != nil {
			return result{}, err
		}
		return result{Object: newObj.Object, Patch: patch}, nil
	}
	return result{}, fmt.Errorf("unknown op %q", req.Op)
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-lua ARGOCD_CM_YAML <requests.json")
		os.Exit(2)
	}
	ctx := context.Background()
	ov, err := overrides(ctx, os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-cm:", err)
		os.Exit(1)
	}
	var requests []request
	if err := json.NewDecoder(os.Stdin).Decode(&requests); err != nil {
		fmt.Fprintln(os.Stderr, "requests:", err)
		os.Exit(1)
	}
	vm := lua.VM{ResourceOverrides: ov}
	results := make([]result, 0, len(requests))
	for _, req := range requests {
		res, err := run(vm, req)
		if err != nil {
			res = result{Error: err.Error()}
		}
		results = append(results, res)
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, "results:", err)
		os.Exit(1)
	}
}
