# Shared facts for every rule family of the fidomesh admission policy.
#
# Portability (OPA v1.x and regorus 0.14 must agree on every decision):
#   - every value a rule reads is normalised here to a defined value of the
#     expected type (object, string, array), so `not` never sees an undefined
#     operand and no builtin is ever called with an argument of the wrong type
#     (regorus raises an error where OPA silently yields undefined);
#   - `data.fidomesh.<key>` is read only by key, each key through its own
#     rule with a default, so a missing key behaves as an empty map;
#   - messages are built from strings only (no %v formatting of numbers or
#     collections, whose rendering differs between engines).
package fidomesh.admission

import rego.v1

# ---------------------------------------------------------------------------
# Type-safe accessors

obj_or_empty(x) := x if is_object(x)

obj_or_empty(x) := {} if not is_object(x)

arr_or_empty(x) := x if is_array(x)

arr_or_empty(x) := [] if not is_array(x)

str_or_empty(x) := x if is_string(x)

str_or_empty(x) := "" if not is_string(x)

# get_*(o, path): `path` is a key or an array of keys; missing or mistyped
# values come back as the empty value of the expected type.
get_obj(o, path) := obj_or_empty(object.get(obj_or_empty(o), path, {}))

get_str(o, path) := str_or_empty(object.get(obj_or_empty(o), path, ""))

get_arr(o, path) := arr_or_empty(object.get(obj_or_empty(o), path, []))

# true only for a JSON `true` (not "true", not 1)
is_true(o, path) if object.get(obj_or_empty(o), path, false) == true

# a string for messages; never undefined
quote(s) := concat("", ["\"", str_or_empty(s), "\""])

# ---------------------------------------------------------------------------
# Data (data.fidomesh.*): every key optional, read by key only

default settings := {}

settings := data.fidomesh.settings if is_object(data.fidomesh.settings)

default authenticators := {}

authenticators := data.fidomesh.authenticators if is_object(data.fidomesh.authenticators)

default credentials := {}

credentials := data.fidomesh.credentials if is_object(data.fidomesh.credentials)

default active_keys := {}

active_keys := data.fidomesh.active if is_object(data.fidomesh.active)

default expiring_keys := {}

expiring_keys := data.fidomesh.expiring if is_object(data.fidomesh.expiring)

default held_roles := {}

held_roles := data.fidomesh.heldRoles if is_object(data.fidomesh.heldRoles)

default service_accounts := {}

service_accounts := data.fidomesh.serviceAccounts if is_object(data.fidomesh.serviceAccounts)

default mds := {}

mds := data.fidomesh.mds if is_object(data.fidomesh.mds)

admin_groups := get_obj(settings, "adminGroups")

protected_namespaces := get_obj(settings, "protectedNamespaces")

controller_identity := get_str(settings, "controllerIdentity")

allowed_aaguids := get_obj(settings, "allowedAaguids")

synced_passkeys_allowed if is_true(settings, "allowSyncedPasskeys")

# maxKeyAgeSeconds; DESIGN's default (180 days) when absent or not a positive number
default max_key_age_seconds := 15552000

max_key_age_seconds := n if {
	n := object.get(settings, "maxKeyAgeSeconds", 0)
	is_number(n)
	n > 0
}

# ---------------------------------------------------------------------------
# Input

default request := {}

request := input.request if is_object(input.request)

default requester := {}

requester := input.requester if is_object(input.requester)

operation := get_str(request, "operation")

# CONNECT (exec, attach, port-forward, proxy) changes no policy.
policy_changing_operations := {"CREATE", "UPDATE", "DELETE"}

policy_changing if operation in policy_changing_operations

request_group := get_str(request, ["kind", "group"])

request_kind := get_str(request, ["kind", "kind"])

sub_resource := get_str(request, "subResource")

new_object := get_obj(request, "object")

old_object := get_obj(request, "oldObject")

# The object a request is about: the stored one on DELETE (object is null
# there), the new one otherwise.
subject := old_object if operation == "DELETE"

subject := new_object if operation != "DELETE"

subject_name := n if {
	n := get_str(request, "name")
	n != ""
}

subject_name := n if {
	get_str(request, "name") == ""
	n := get_str(subject, ["metadata", "name"])
}

# The request's namespace; the object's when the request carries none.
namespace := ns if {
	ns := get_str(request, "namespace")
	ns != ""
}

namespace := ns if {
	get_str(request, "namespace") == ""
	ns := get_str(subject, ["metadata", "namespace"])
}

spec := get_obj(subject, "spec")

# ---------------------------------------------------------------------------
# Who is asking

username := get_str(requester, "username")

requester_groups := get_arr(requester, "groups")

# `authenticator` is absent when the requester presented no credential.
has_authenticator if is_object(requester.authenticator)

authenticator := get_obj(requester, "authenticator")

fingerprint := get_str(authenticator, "fingerprint")

credential_id := get_str(authenticator, "credentialId")

amr := get_arr(authenticator, "amr")

is_admin if {
	some g in requester_groups
	is_string(g)
	admin_groups[g] == true
}

is_controller if {
	controller_identity != ""
	username == controller_identity
}

# Kubernetes' own cleanup: the namespace controller deletes everything in a
# namespace being deleted, and the garbage collector deletes dependents of a
# deleted owner (e.g. the Linkerd objects of a removed MeshRoleBinding).
# Refusing them would leave namespaces stuck in Terminating. DELETE only.
kube_cleanup_identities := {
	"system:serviceaccount:kube-system:namespace-controller",
	"system:serviceaccount:kube-system:generic-garbage-collector",
	"system:kube-controller-manager",
}

is_kube_cleanup if {
	operation == "DELETE"
	username in kube_cleanup_identities
}

# The requester's key is registered, hardware-backed and active right now.
key_active if {
	is_true(authenticator, "registered")
	is_true(authenticator, "active")
	fingerprint != ""
	active_keys[fingerprint] == true
}

# ---------------------------------------------------------------------------
# What is being asked about

fidomesh_group := "fidomesh.io"

is_fidomesh_resource if request_group == fidomesh_group

is_fidomesh_kind(kind) if {
	request_group == fidomesh_group
	request_kind == kind
}

# Linkerd policy objects: what decides who may talk to whom in the mesh.
# Linkerd also reads Gateway API routes as policy targets.
linkerd_policy_kinds := {
	"policy.linkerd.io": {
		"AuthorizationPolicy",
		"MeshTLSAuthentication",
		"NetworkAuthentication",
		"Server",
		"ServerAuthorization",
		"HTTPRoute",
		"EgressNetwork",
		"HTTPLocalRateLimitPolicy",
	},
	"gateway.networking.k8s.io": {"HTTPRoute", "GRPCRoute"},
}

is_linkerd_policy_object if request_kind in object.get(linkerd_policy_kinds, request_group, set())

is_protected_namespace if {
	namespace != ""
	protected_namespaces[namespace] == true
}

is_protected_linkerd_object if {
	is_linkerd_policy_object
	is_protected_namespace
}

# Everything hardware-key-required guards.
key_guarded if is_fidomesh_resource

key_guarded if is_protected_linkerd_object

managed_by_label := "app.kubernetes.io/managed-by"

labelled_managed(o) if get_str(o, ["metadata", "labels", managed_by_label]) == "fidomesh"

is_managed_object if labelled_managed(new_object)

is_managed_object if labelled_managed(old_object)

# "<kind> <namespace>/<name>" for messages
subject_ref := concat("", [request_kind, " ", namespace, "/", subject_name]) if namespace != ""

subject_ref := concat("", [request_kind, " ", subject_name]) if namespace == ""
