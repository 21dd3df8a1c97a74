# authenticator-hygiene, aaguid-low-certification, attestation-none
#
# Every Authenticator written (CREATE or UPDATE, by anyone) has well-formed
# IDs, an allowed and unrevoked AAGUID, a validity span within the maximum key
# age, is device-bound unless synced passkeys are allowed, and does not
# register a credential that another Authenticator already holds.
package fidomesh.admission

import rego.v1

hygiene_applies if {
	is_fidomesh_kind("Authenticator")
	operation in {"CREATE", "UPDATE"}
}

new_credential_id := get_str(new_spec, "credentialId")

new_aaguid := get_str(new_spec, "aaguid")

mds_entry := get_obj(mds, new_aaguid)

hygiene_problem(msg) := {
	"code": "authenticator-hygiene",
	"msg": concat("", ["Authenticator ", subject_name, ": ", msg]),
}

# --- well-formed IDs --------------------------------------------------------

# Unpadded base64url of 16..1023 bytes: 22..1364 characters, never 1 modulo 4,
# and canonical (the unused low bits of the last character are zero).
# (RE2, OPA's regex engine, refuses repeat counts above 1000: the upper bound
# is a count, which is exact once the pattern has proved the value ASCII.)
credential_id_length_pattern := `^[A-Za-z0-9_-]{22,}$`

credential_id_max_length := 1364

credential_id_canonical_pattern := `^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$`

well_formed_credential_id(c) if {
	regex.match(credential_id_length_pattern, c)
	count(c) <= credential_id_max_length
	regex.match(credential_id_canonical_pattern, c)
}

aaguid_pattern := `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`

well_formed_aaguid(a) if regex.match(aaguid_pattern, a)

deny contains problem if {
	hygiene_applies
	not well_formed_credential_id(new_credential_id)
	problem := hygiene_problem("spec.credentialId must be the canonical, unpadded base64url encoding of 16 to 1023 bytes")
}

deny contains problem if {
	hygiene_applies
	not well_formed_aaguid(new_aaguid)
	problem := hygiene_problem("spec.aaguid must be a lowercase UUID")
}

# --- one Authenticator per credential ----------------------------------------

deny contains problem if {
	hygiene_applies
	new_credential_id != ""
	fp := credentials[new_credential_id]
	is_string(fp)
	get_str(get_obj(authenticators, fp), "name") != subject_name
	problem := hygiene_problem(concat("", [
		"the credential is already registered as Authenticator ",
		quote(get_str(get_obj(authenticators, fp), "name")),
	]))
}

# --- authenticator model ----------------------------------------------------

aaguid_allowed if allowed_aaguids[new_aaguid] == true

deny contains problem if {
	hygiene_applies
	count(allowed_aaguids) > 0
	not aaguid_allowed
	problem := hygiene_problem(concat("", [
		"authenticator model ", new_aaguid,
		" is not in the allowed AAGUIDs of the settings",
	]))
}

aaguid_revoked if is_true(mds_entry, "revoked")

aaguid_revoked if upper(get_str(mds_entry, "status")) == "REVOKED"

deny contains problem if {
	hygiene_applies
	new_aaguid != ""
	aaguid_revoked
	problem := hygiene_problem(concat("", [
		"authenticator model ", new_aaguid, " (",
		get_str(mds_entry, "description"),
		") is revoked by the FIDO metadata service",
	]))
}

# --- device-bound -----------------------------------------------------------

deny contains problem if {
	hygiene_applies
	is_true(new_spec, ["attestation", "backupEligible"])
	not synced_passkeys_allowed
	problem := hygiene_problem("the credential is backup-eligible (a synced passkey) and the settings require device-bound keys")
}

# --- validity span ----------------------------------------------------------

# RFC 3339 as both engines parse it alike: upper-case T and Z, years 1970 to
# 2261 (nanoseconds since the epoch fit 64 bits), real calendar days. A value
# outside this is refused here instead of being handed to
# time.parse_rfc3339_ns, which fails differently in OPA and regorus.
rfc3339_pattern := `^(19[7-9][0-9]|2[01][0-9][0-9]|22[0-5][0-9]|226[01])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`

multiples_of_four := {
	"00", "04", "08", "12", "16", "20", "24", "28", "32", "36", "40", "44", "48",
	"52", "56", "60", "64", "68", "72", "76", "80", "84", "88", "92", "96",
}

months_of_31_days := {"01", "03", "05", "07", "08", "10", "12"}

leap_year(y) if {
	substring(y, 2, 2) != "00"
	substring(y, 2, 2) in multiples_of_four
}

leap_year(y) if {
	substring(y, 2, 2) == "00"
	substring(y, 0, 2) in multiples_of_four
}

day_fits_month(t) if substring(t, 8, 2) <= "28"

day_fits_month(t) if {
	substring(t, 8, 2) in {"29", "30"}
	substring(t, 5, 2) != "02"
}

day_fits_month(t) if {
	substring(t, 8, 2) == "31"
	substring(t, 5, 2) in months_of_31_days
}

day_fits_month(t) if {
	substring(t, 8, 2) == "29"
	substring(t, 5, 2) == "02"
	leap_year(substring(t, 0, 4))
}

valid_timestamp(t) if {
	is_string(t)
	regex.match(rfc3339_pattern, t)
	day_fits_month(t)
}

timestamp_fields := {"notBefore", "notAfter"}

deny contains problem if {
	hygiene_applies
	some field in timestamp_fields
	value := object.get(new_spec, field, null)
	value != null
	not valid_timestamp(value)
	problem := hygiene_problem(concat("", [
		"spec.", field, " must be an RFC 3339 time such as 2027-03-01T00:00:00Z",
	]))
}

validity_span_ns := span if {
	not_before := object.get(new_spec, "notBefore", null)
	not_after := object.get(new_spec, "notAfter", null)
	valid_timestamp(not_before)
	valid_timestamp(not_after)
	span := time.parse_rfc3339_ns(not_after) - time.parse_rfc3339_ns(not_before)
}

deny contains problem if {
	hygiene_applies
	validity_span_ns <= 0
	problem := hygiene_problem("spec.notAfter must be later than spec.notBefore")
}

deny contains problem if {
	hygiene_applies
	validity_span_ns > max_key_age_seconds * 1000000000
	problem := hygiene_problem("the validity span from spec.notBefore to spec.notAfter exceeds the maximum key age of the settings")
}

# --- warnings ---------------------------------------------------------------

# certificationLevel: "L1", "L1plus", "L2", ... or the MDS status name
# ("FIDO_CERTIFIED_L2"); case does not matter.
certification_levels_l2_or_better := {"L2", "L2PLUS", "L3", "L3PLUS"}

certification_level := trim_prefix(upper(get_str(mds_entry, "certificationLevel")), "FIDO_CERTIFIED_")

certified_l2_or_better if certification_level in certification_levels_l2_or_better

warn contains {
	"code": "aaguid-low-certification",
	"msg": concat("", [
		"Authenticator ", subject_name, ": authenticator model ", new_aaguid,
		" is not FIDO certified at level L2 or higher",
	]),
} if {
	is_fidomesh_kind("Authenticator")
	operation == "CREATE"
	well_formed_aaguid(new_aaguid)
	not certified_l2_or_better
}

warn contains {
	"code": "attestation-none",
	"msg": concat("", [
		"Authenticator ", subject_name,
		": attestation format none proves no hardware; this key will not count as hardware-backed",
	]),
} if {
	is_fidomesh_kind("Authenticator")
	operation == "CREATE"
	get_str(new_spec, ["attestation", "format"]) == "none"
}
