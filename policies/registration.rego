# self-registration-only
#
# An Authenticator is created only by its holder using that very credential,
# or by an admin group. Once registered, only its holder (or an admin) may
# change or delete it, and its credential ID and holder never change except by
# an admin.
package fidomesh.admission

import rego.v1

deny contains denial if {
	input.request.kind.group == "fidomesh.io"
	input.request.kind.kind == "Authenticator"
	input.request.operation != "CONNECT"
	some denial in registration_denials
}

registration_exempt if is_admin

registration_exempt if is_controller

registration_exempt if is_kube_cleanup

# spec.holder and spec.credentialId of the new and the stored Authenticator, "" when absent
new_holder := s if {
	s := input.request.object.spec.holder
	is_string(s)
} else := ""

old_holder := s if {
	s := input.request.oldObject.spec.holder
	is_string(s)
} else := ""

new_credential_id := s if {
	s := input.request.object.spec.credentialId
	is_string(s)
} else := ""

old_credential_id := s if {
	s := input.request.oldObject.spec.credentialId
	is_string(s)
} else := ""

registration_denials contains {
	"code": "self-registration-only",
	"msg": concat("", [
		"Authenticator ", subject_name,
		" may be created only by its holder ", quote(new_holder),
		" authenticating with that very credential, or by an admin",
	]),
} if {
	input.request.operation == "CREATE"
	not registers_own_credential
	not registration_exempt
}

# UPDATE: the requester holds the key before and after the change
registration_denials contains {
	"code": "self-registration-only",
	"msg": concat("", [
		"Authenticator ", subject_name,
		" may be changed only by its holder ", quote(old_holder),
		" or by an admin",
	]),
} if {
	input.request.operation == "UPDATE"
	not updates_own_authenticator
	not registration_exempt
}

updates_own_authenticator if {
	u := input.requester.username
	u == input.request.oldObject.spec.holder
	u == input.request.object.spec.holder
	is_string(u)
	u != ""
}

registration_denials contains {
	"code": "self-registration-only",
	"msg": concat("", [
		"Authenticator ", subject_name,
		": the credential ID of a registered key cannot change; register a new Authenticator",
	]),
} if {
	input.request.operation == "UPDATE"
	new_credential_id != old_credential_id
	not registration_exempt
}

registration_denials contains {
	"code": "self-registration-only",
	"msg": concat("", [
		"Authenticator ", subject_name,
		" may be deleted only by its holder ", quote(old_holder),
		" or by an admin",
	]),
} if {
	input.request.operation == "DELETE"
	not deletes_own_authenticator
	not registration_exempt
}

deletes_own_authenticator if {
	u := input.requester.username
	u == input.request.oldObject.spec.holder
	is_string(u)
	u != ""
}
