# Shared facts for every rule family of the fidomesh admission policy.
#
# Cost (the webhook evaluates every decision from scratch, with regorus, an
# interpreter: each rule body it enters, rule it evaluates, function it calls
# and builtin it calls costs about a microsecond or more, a regex.match ten;
# see README.md, "Writing policies that stay fast"):
#   - every deny/warn rule starts with a cheap test of the input (group, kind,
#     operation), so that a request it does not concern leaves it at once;
#   - the condition that would deny comes before the exemptions (admin,
#     controller, cleanup), and messages are built only once a rule holds;
#   - values are read straight from `input` and `data`: an undefined
#     reference just makes a rule body fail, which is what a missing value
#     means in a positive condition.
#
# Portability (OPA v1.x and regorus 0.14 must agree on every decision):
#   - never negate a call with a possibly undefined argument: `not f(x)` with
#     `x` undefined is true in regorus but undefined in OPA. Negate a rule
#     (`not key_active`) or a call on a bound value instead, and read a value
#     that may be missing through a rule with an `else` or `object.get` when
#     its absence must count;
#   - never call a builtin with a value of the wrong type (regorus raises an
#     error where OPA would be undefined): `is_string`/`is_object`/`is_array`
#     first;
#   - `data.fidomesh.<key>` may be missing or of any type: only index it (a
#     missing key or a non-object is then undefined, i.e. an empty map), and
#     prove the index a string in the same body (regorus looks a number up as
#     a string key, OPA does not);
#   - messages are built from strings only (no %v formatting of numbers or
#     collections, whose rendering differs between engines).
package fidomesh.admission

import rego.v1

# ---------------------------------------------------------------------------
# Strings for messages: always defined

# "<s>" for a string s
quote(s) := concat("", ["\"", s, "\""])

# o[k] when it is a string, else "" (o: an object)
string_field(o, k) := s if {
	s := o[k]
	is_string(s)
} else := ""

# ---------------------------------------------------------------------------
# The request

# The metadata of the object a request is about: the stored one on DELETE
# (object is null there), the new one otherwise. (Every rule that reads it
# has checked the operation first.)
subject_metadata := m if {
	input.request.operation == "DELETE"
	m := input.request.oldObject.metadata
}

subject_metadata := m if {
	input.request.operation != "DELETE"
	m := input.request.object.metadata
}

subject_name := n if {
	n := input.request.name
	is_string(n)
	n != ""
} else := n if {
	n := subject_metadata.name
	is_string(n)
} else := ""

# The request's namespace; the object's when the request carries none.
namespace := ns if {
	ns := input.request.namespace
	is_string(ns)
	ns != ""
} else := ns if {
	ns := subject_metadata.namespace
	is_string(ns)
} else := ""

request_kind := k if {
	k := input.request.kind.kind
	is_string(k)
} else := ""

# "<kind> <namespace>/<name>" for messages
subject_ref := concat("", [request_kind, " ", namespace, "/", subject_name]) if namespace != ""

subject_ref := concat("", [request_kind, " ", subject_name]) if namespace == ""

is_protected_namespace if {
	ns := namespace
	ns != ""
	data.fidomesh.settings.protectedNamespaces[ns] == true
}

# ---------------------------------------------------------------------------
# Who is asking

# `requester.authenticator` is absent when the requester presented no credential.
has_authenticator if is_object(input.requester.authenticator)

is_admin if {
	groups := input.requester.groups
	is_array(groups)
	admin_groups := data.fidomesh.settings.adminGroups
	is_object(admin_groups)
	some g in groups
	admin_groups[g] == true
}

is_controller if {
	u := input.requester.username
	u == data.fidomesh.settings.controllerIdentity
	is_string(u)
	u != ""
}

# Kubernetes' own cleanup: the namespace controller deletes everything in a
# namespace being deleted, and the garbage collector deletes dependents of a
# deleted owner (e.g. the Linkerd objects of a removed MeshRoleBinding).
# Refusing them would leave namespaces stuck in Terminating. DELETE only.
is_kube_cleanup if {
	input.request.operation == "DELETE"
	input.requester.username in {
		"system:serviceaccount:kube-system:namespace-controller",
		"system:serviceaccount:kube-system:generic-garbage-collector",
		"system:kube-controller-manager",
	}
}

# The requester's key is registered, active, and active in the data right now.
key_active if {
	input.requester.authenticator.registered == true
	input.requester.authenticator.active == true
	fp := input.requester.authenticator.fingerprint
	is_string(fp)
	fp != ""
	data.fidomesh.active[fp] == true
}

# The requester registers the Authenticator of the request (its spec.holder)
# presenting the credential it names (its spec.credentialId).
registers_own_credential if {
	u := input.requester.username
	u == input.request.object.spec.holder
	is_string(u)
	u != ""
	c := input.requester.authenticator.credentialId
	c == input.request.object.spec.credentialId
	is_string(c)
	c != ""
}
