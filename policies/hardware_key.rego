# hardware-key-required, authentication-stale, key-expiring-soon
#
# Creating, changing or deleting fidomesh resources, or Linkerd policy objects
# in protected namespaces, needs a requester with a hardware-backed,
# registered, active authenticator and a fresh authentication. Admins are no
# exception; only the controller identity (and Kubernetes' own cleanup
# deletes) are.
package fidomesh.admission

import rego.v1

# --- scope: the resources the key guards --------------------------------------

deny contains denial if {
	input.request.operation != "CONNECT"
	key_guarded
	some denial in key_denials
}

key_guarded if {
	input.request.kind.group == "fidomesh.io"
} else if {
	# Linkerd policy objects: what decides who may talk to whom in the mesh.
	input.request.kind.group == "policy.linkerd.io"
	input.request.kind.kind in {
		"AuthorizationPolicy",
		"MeshTLSAuthentication",
		"NetworkAuthentication",
		"Server",
		"ServerAuthorization",
		"HTTPRoute",
		"EgressNetwork",
		"HTTPLocalRateLimitPolicy",
	}
	is_protected_namespace
} else if {
	# Linkerd also reads Gateway API routes as policy targets.
	input.request.kind.group == "gateway.networking.k8s.io"
	input.request.kind.kind in {"HTTPRoute", "GRPCRoute"}
	is_protected_namespace
}

# --- the requirement -----------------------------------------------------------

# DESIGN §5, bootstrapping: registering a key is the one change the key itself
# vouches for. The key need not be registered yet.
key_requirement_met if {
	input.request.operation == "CREATE"
	input.request.kind.kind == "Authenticator"
	input.request.kind.group == "fidomesh.io"
	amr := input.requester.authenticator.amr
	is_array(amr)
	"hwk" in amr
	registers_own_credential
} else if {
	# a hardware-backed, registered, active key, held by the requester
	input.requester.authenticator.hardwareBacked == true
	key_active
	object.get(input.requester.authenticator, "holderMatches", true) != false
}

# (in the scope above)
key_denials contains {
	"code": "hardware-key-required",
	"msg": concat("", [
		input.request.operation, " ", subject_ref,
		" needs a hardware-backed, registered, active FIDO2 authenticator: ",
		key_failure_text,
	]),
} if {
	input.request.operation in {"CREATE", "UPDATE", "DELETE"}
	not key_requirement_met
	not is_controller
	not is_kube_cleanup
}

key_denials contains {
	"code": "authentication-stale",
	"msg": concat("", [
		input.request.operation, " ", subject_ref,
		" needs a fresh authentication: authenticate again with the hardware key",
	]),
} if {
	not input.requester.authenticator.fresh == true
	input.request.operation in {"CREATE", "UPDATE", "DELETE"}
	has_authenticator
	not is_controller
	not is_kube_cleanup
}

# --- why (for the message) -----------------------------------------------------

amr_has_hwk if {
	amr := input.requester.authenticator.amr
	is_array(amr)
	"hwk" in amr
}

key_registered if input.requester.authenticator.registered == true

key_hardware_backed if input.requester.authenticator.hardwareBacked == true

holder_mismatch if input.requester.authenticator.holderMatches == false

# [priority, reason]: the reasons are listed most fundamental first
key_failure_reasons contains [1, "no FIDO2 credential was presented"] if not has_authenticator

key_failure_reasons contains [2, "the authentication did not use a hardware key (amr lacks hwk)"] if {
	has_authenticator
	not amr_has_hwk
}

key_failure_reasons contains [3, "the credential is not a registered Authenticator"] if {
	has_authenticator
	not key_registered
}

key_failure_reasons contains [4, "the Authenticator is not active (not yet valid, expired or revoked)"] if {
	key_registered
	not key_active
}

key_failure_reasons contains [5, "the credential is not hardware-backed (attestation none, or a synced passkey)"] if {
	key_registered
	not key_hardware_backed
}

key_failure_reasons contains [6, "the Authenticator is registered to another holder"] if {
	key_registered
	holder_mismatch
}

key_failure_text := concat("; ", [reason[1] | some reason in sort(key_failure_reasons)]) if count(key_failure_reasons) > 0

key_failure_text := "no hardware-backed, registered, active authenticator" if count(key_failure_reasons) == 0

# --- expiry warning ------------------------------------------------------------

warn contains {
	"code": "key-expiring-soon",
	"msg": concat("", [
		"the authenticator ", fp,
		" used for this request expires soon: register its successor",
	]),
} if {
	fp := input.requester.authenticator.fingerprint
	data.fidomesh.expiring[fp] == true
	is_string(fp)
	fp != ""
	input.request.operation in {"CREATE", "UPDATE", "DELETE"}
	key_guarded
}
