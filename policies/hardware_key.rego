# hardware-key-required, authentication-stale, key-expiring-soon
#
# Creating, changing or deleting fidomesh resources, or Linkerd policy objects
# in protected namespaces, needs a requester with a hardware-backed,
# registered, active authenticator and a fresh authentication. Admins are no
# exception; only the controller identity (and Kubernetes' own cleanup
# deletes) are.
package fidomesh.admission

import rego.v1

key_rule_applies if {
	policy_changing
	key_guarded
	not is_controller
	not is_kube_cleanup
}

amr_has_hwk if "hwk" in amr

# DESIGN §5, bootstrapping: registering a key is the one change the key itself
# vouches for. The key need not be registered yet.
bootstrap_registration if {
	operation == "CREATE"
	is_fidomesh_kind("Authenticator")
	amr_has_hwk
	credential_id != ""
	credential_id == get_str(spec, "credentialId")
	username != ""
	username == get_str(spec, "holder")
}

holder_mismatch if object.get(authenticator, "holderMatches", true) == false

hardware_key_proven if {
	is_true(authenticator, "hardwareBacked")
	key_active
	not holder_mismatch
}

key_requirement_met if bootstrap_registration

key_requirement_met if hardware_key_proven

# [priority, reason]: the reasons are listed most fundamental first
key_failure_reasons contains [1, "no FIDO2 credential was presented"] if not has_authenticator

key_failure_reasons contains [2, "the authentication did not use a hardware key (amr lacks hwk)"] if {
	has_authenticator
	not amr_has_hwk
}

key_failure_reasons contains [3, "the credential is not a registered Authenticator"] if {
	has_authenticator
	not is_true(authenticator, "registered")
}

key_failure_reasons contains [4, "the Authenticator is not active (not yet valid, expired or revoked)"] if {
	has_authenticator
	is_true(authenticator, "registered")
	not key_active
}

key_failure_reasons contains [5, "the credential is not hardware-backed (attestation none, or a synced passkey)"] if {
	has_authenticator
	is_true(authenticator, "registered")
	not is_true(authenticator, "hardwareBacked")
}

key_failure_reasons contains [6, "the Authenticator is registered to another holder"] if {
	has_authenticator
	is_true(authenticator, "registered")
	holder_mismatch
}

key_failure_text := concat("; ", [reason[1] | some reason in sort(key_failure_reasons)]) if count(key_failure_reasons) > 0

key_failure_text := "no hardware-backed, registered, active authenticator" if count(key_failure_reasons) == 0

deny contains {
	"code": "hardware-key-required",
	"msg": concat("", [
		operation, " ", subject_ref,
		" needs a hardware-backed, registered, active FIDO2 authenticator: ",
		key_failure_text,
	]),
} if {
	key_rule_applies
	not key_requirement_met
}

deny contains {
	"code": "authentication-stale",
	"msg": concat("", [
		operation, " ", subject_ref,
		" needs a fresh authentication: authenticate again with the hardware key",
	]),
} if {
	key_rule_applies
	has_authenticator
	not is_true(authenticator, "fresh")
}

warn contains {
	"code": "key-expiring-soon",
	"msg": concat("", [
		"the authenticator ", fingerprint,
		" used for this request expires soon: register its successor",
	]),
} if {
	policy_changing
	key_guarded
	fingerprint != ""
	expiring_keys[fingerprint] == true
}
