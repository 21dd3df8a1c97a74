# no-wildcard-identities
#
# In protected namespaces no MeshTLSAuthentication (nor legacy
# ServerAuthorization) grants every identity or a whole namespace: no "*" in
# an identity string (neither "*" nor "*.<ns>.serviceaccount.identity.linkerd.<trust domain>"),
# no identityRef of kind Namespace, no ServiceAccount identityRef named "*".
# Applies to everyone, the controller included: the translation never needs it.
package fidomesh.admission

import rego.v1

wildcard_rule_applies if {
	operation in {"CREATE", "UPDATE"}
	request_group == "policy.linkerd.io"
	is_protected_namespace
}

wildcard_identity(id) if {
	is_string(id)
	contains(id, "*")
}

# MeshTLSAuthentication spec.identities
wildcard_grants contains grant if {
	request_kind == "MeshTLSAuthentication"
	some id in get_arr(new_spec, "identities")
	wildcard_identity(id)
	grant := concat("", ["identity ", quote(id)])
}

# MeshTLSAuthentication spec.identityRefs of kind Namespace
wildcard_grants contains grant if {
	request_kind == "MeshTLSAuthentication"
	some ref in get_arr(new_spec, "identityRefs")
	lower(get_str(ref, "kind")) == "namespace"
	grant := concat("", ["identityRef to the whole namespace ", quote(get_str(ref, "name"))])
}

# MeshTLSAuthentication spec.identityRefs of kind ServiceAccount named "*"
wildcard_grants contains "identityRef to every ServiceAccount (name \"*\")" if {
	request_kind == "MeshTLSAuthentication"
	some ref in get_arr(new_spec, "identityRefs")
	lower(get_str(ref, "kind")) == "serviceaccount"
	contains(get_str(ref, "name"), "*")
}

# legacy ServerAuthorization spec.client.meshTLS.identities
wildcard_grants contains grant if {
	request_kind == "ServerAuthorization"
	some id in get_arr(new_spec, ["client", "meshTLS", "identities"])
	wildcard_identity(id)
	grant := concat("", ["client identity ", quote(id)])
}

deny contains {
	"code": "no-wildcard-identities",
	"msg": concat("", [
		subject_ref, " in protected namespace ", namespace,
		" grants ", grant,
		": name the ServiceAccounts instead",
	]),
} if {
	wildcard_rule_applies
	some grant in wildcard_grants
}
