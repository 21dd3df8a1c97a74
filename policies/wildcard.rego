# no-wildcard-identities
#
# In protected namespaces no MeshTLSAuthentication (nor legacy
# ServerAuthorization) grants every identity or a whole namespace: no "*" in
# an identity string (neither "*" nor "*.<ns>.serviceaccount.identity.linkerd.<trust domain>"),
# no identityRef of kind Namespace, no ServiceAccount identityRef named "*".
# Applies to everyone, the controller included: the translation never needs it.
package fidomesh.admission

import rego.v1

deny contains {
	"code": "no-wildcard-identities",
	"msg": concat("", [
		subject_ref, " in protected namespace ", namespace,
		" grants ", grant,
		": name the ServiceAccounts instead",
	]),
} if {
	input.request.kind.group == "policy.linkerd.io"
	input.request.kind.kind in {"MeshTLSAuthentication", "ServerAuthorization"}
	input.request.operation in {"CREATE", "UPDATE"}
	is_protected_namespace
	some grant in wildcard_grants
}

# MeshTLSAuthentication spec.identities
wildcard_grants contains concat("", ["identity ", quote(id)]) if {
	input.request.kind.kind == "MeshTLSAuthentication"
	ids := input.request.object.spec.identities
	is_array(ids)
	some id in ids
	is_string(id)
	contains(id, "*")
}

# MeshTLSAuthentication spec.identityRefs of kind Namespace
wildcard_grants contains concat("", ["identityRef to the whole namespace ", quote(string_field(ref, "name"))]) if {
	input.request.kind.kind == "MeshTLSAuthentication"
	refs := input.request.object.spec.identityRefs
	is_array(refs)
	some ref in refs
	kind := ref.kind
	is_string(kind)
	lower(kind) == "namespace"
}

# MeshTLSAuthentication spec.identityRefs of kind ServiceAccount named "*"
wildcard_grants contains "identityRef to every ServiceAccount (name \"*\")" if {
	input.request.kind.kind == "MeshTLSAuthentication"
	refs := input.request.object.spec.identityRefs
	is_array(refs)
	some ref in refs
	kind := ref.kind
	is_string(kind)
	lower(kind) == "serviceaccount"
	name := ref.name
	is_string(name)
	contains(name, "*")
}

# legacy ServerAuthorization spec.client.meshTLS.identities
wildcard_grants contains concat("", ["client identity ", quote(id)]) if {
	input.request.kind.kind == "ServerAuthorization"
	ids := input.request.object.spec.client.meshTLS.identities
	is_array(ids)
	some id in ids
	is_string(id)
	contains(id, "*")
}
