"""Action table of the DICOM Basic Application Level Confidentiality Profile.

Source: DICOM PS3.15 (2024b) Annex E, Table E.1-1 "Application Level Confidentiality Profile
Attributes", column "Basic Prof.". Action codes (PS3.15 E.3.1):

    X  remove                    Z  replace with a zero-length value
    D  replace with a dummy      U  replace the UID with a consistent, non-identifying one
    K  keep (sequences marked U* in the table: kept, every UID inside them remapped)

Where the table offers a choice (X/Z, X/D, Z/D, X/Z/D, X/Z/U*) we resolve it once, for the
IODs RadViewer ingests (CR, DX, Ophthalmic Tomography, Secondary Capture): D where the
attribute is Type 1 in one of them (Content Date/Time; Acquisition DateTime and Device Serial
Number in the enhanced OPT modules), Z where it is Type 2 (Acquisition Context Sequence,
Contrast/Bolus Agent), X otherwise - removal is never less private than a dummy. The original
choice is kept in the comment. Patient's Name and Patient ID (Z, Z/D) are then given the
keyed pseudonym, which Z permits ("or a non-zero length dummy value").

Attributes of the table that occur only in RT, SR, specimen, hanging-protocol or clinical-trial
objects are omitted; the generic rules in ``clinical.ingest.deid`` still cover them: every
private tag is removed, every curve (50xx) and overlay (60xx) group is removed, and every UID
outside the DICOM root (1.2.840.10008) is remapped, listed here or not.
"""

from __future__ import annotations

from typing import Literal

Action = Literal["X", "Z", "D", "U", "K"]

BASIC_PROFILE_TABLE: tuple[tuple[str, Action], ...] = (
    # Patient
    ("PatientName", "Z"),  # Z -> pseudonym
    ("PatientID", "Z"),  # Z/D -> pseudonym
    ("IssuerOfPatientID", "X"),
    ("PatientBirthDate", "Z"),
    ("PatientBirthTime", "X"),
    ("PatientSex", "Z"),
    ("PatientAge", "X"),
    ("PatientSize", "X"),
    ("PatientWeight", "X"),
    ("PatientAddress", "X"),
    ("PatientTelephoneNumbers", "X"),
    ("PatientTelecomInformation", "X"),
    ("OtherPatientIDs", "X"),
    ("OtherPatientIDsSequence", "X"),
    ("OtherPatientNames", "X"),
    ("PatientBirthName", "X"),
    ("PatientMotherBirthName", "X"),
    ("MilitaryRank", "X"),
    ("BranchOfService", "X"),
    ("MedicalRecordLocator", "X"),
    ("MedicalAlerts", "X"),
    ("Allergies", "X"),
    ("CountryOfResidence", "X"),
    ("RegionOfResidence", "X"),
    ("EthnicGroup", "X"),
    ("Occupation", "X"),
    ("SmokingStatus", "X"),
    ("AdditionalPatientHistory", "X"),
    ("PregnancyStatus", "X"),
    ("LastMenstrualDate", "X"),
    ("PatientReligiousPreference", "X"),
    ("PatientComments", "X"),
    ("PatientInsurancePlanCodeSequence", "X"),
    ("InsurancePlanIdentification", "X"),
    ("PatientPrimaryLanguageCodeSequence", "X"),
    ("PatientPrimaryLanguageModifierCodeSequence", "X"),
    ("ResponsiblePerson", "X"),
    ("ResponsibleOrganization", "X"),
    ("PatientState", "X"),
    ("SpecialNeeds", "X"),
    ("PatientSexNeutered", "X"),  # X/Z
    ("ReferencedPatientSequence", "X"),
    ("ReferencedPatientPhotoSequence", "X"),
    ("ReferencedPatientAliasSequence", "X"),
    ("PatientTransportArrangements", "X"),
    ("ConfidentialityConstraintOnPatientDataDescription", "X"),
    ("ClinicalTrialSubjectID", "X"),  # D; trial modules are not ingested
    ("ClinicalTrialSubjectReadingID", "X"),  # D; idem
    # Visit and admission
    ("AdmissionID", "X"),
    ("IssuerOfAdmissionIDSequence", "X"),
    ("AdmittingDate", "X"),
    ("AdmittingTime", "X"),
    ("AdmittingDiagnosesDescription", "X"),
    ("AdmittingDiagnosesCodeSequence", "X"),
    ("DischargeDate", "X"),
    ("DischargeTime", "X"),
    ("DischargeDiagnosisDescription", "X"),
    ("CurrentPatientLocation", "X"),
    ("PatientInstitutionResidence", "X"),
    ("VisitComments", "X"),
    ("ServiceEpisodeID", "X"),
    ("ServiceEpisodeDescription", "X"),
    ("IssuerOfServiceEpisodeIDSequence", "X"),
    # Study and request
    ("StudyInstanceUID", "U"),
    ("StudyDate", "Z"),
    ("StudyTime", "Z"),
    ("AccessionNumber", "Z"),
    ("StudyID", "Z"),
    ("StudyIDIssuer", "X"),
    ("StudyDescription", "X"),
    ("StudyComments", "X"),
    ("ReferringPhysicianName", "Z"),
    ("ReferringPhysicianAddress", "X"),
    ("ReferringPhysicianTelephoneNumbers", "X"),
    ("ReferringPhysicianIdentificationSequence", "X"),
    ("ConsultingPhysicianName", "Z"),
    ("ConsultingPhysicianIdentificationSequence", "X"),
    ("PhysiciansOfRecord", "X"),
    ("PhysiciansOfRecordIdentificationSequence", "X"),
    ("NameOfPhysiciansReadingStudy", "X"),
    ("PhysiciansReadingStudyIdentificationSequence", "X"),
    ("ReferencedStudySequence", "X"),  # X/Z
    ("RequestingPhysician", "X"),
    ("RequestingService", "X"),
    ("ReasonForStudy", "X"),
    ("RequestedProcedureDescription", "X"),  # X/Z
    ("RequestedProcedureID", "X"),
    ("RequestedProcedureComments", "X"),
    ("RequestedProcedureLocation", "X"),
    ("ReasonForTheRequestedProcedure", "X"),
    ("ReasonForRequestedProcedureCodeSequence", "X"),
    ("RequestedContrastAgent", "X"),
    ("StudyArrivalDate", "X"),
    ("StudyArrivalTime", "X"),
    ("StudyCompletionDate", "X"),
    ("StudyCompletionTime", "X"),
    ("StudyVerifiedDate", "X"),
    ("StudyVerifiedTime", "X"),
    ("StudyReadDate", "X"),
    ("StudyReadTime", "X"),
    ("PlacerOrderNumberImagingServiceRequest", "Z"),
    ("FillerOrderNumberImagingServiceRequest", "Z"),
    ("ImagingServiceRequestComments", "X"),
    ("IssueDateOfImagingServiceRequest", "X"),
    ("IssueTimeOfImagingServiceRequest", "X"),
    ("OrderEnteredBy", "X"),
    ("OrderEntererLocation", "X"),
    ("OrderCallbackPhoneNumber", "X"),
    ("OrderCallbackTelecomInformation", "X"),
    ("ReasonForTheImagingServiceRequest", "X"),
    ("NamesOfIntendedRecipientsOfResults", "X"),
    ("IntendedRecipientsOfResultsIdentificationSequence", "X"),
    ("PersonIdentificationCodeSequence", "X"),  # D (Type 1 only inside removed sequences)
    # Series, procedure steps, performers
    ("SeriesInstanceUID", "U"),
    ("SeriesDate", "X"),  # X/D
    ("SeriesTime", "X"),  # X/D
    ("SeriesDescription", "X"),
    ("ProtocolName", "X"),  # X/D
    ("OperatorsName", "X"),  # X/Z/D
    ("OperatorIdentificationSequence", "X"),  # X/D
    ("PerformingPhysicianName", "X"),
    ("PerformingPhysicianIdentificationSequence", "X"),
    ("RequestAttributesSequence", "X"),
    ("ReferencedPerformedProcedureStepSequence", "X"),  # X/Z/D
    ("PerformedProcedureStepID", "X"),
    ("PerformedProcedureStepStartDate", "X"),
    ("PerformedProcedureStepStartTime", "X"),
    ("PerformedProcedureStepEndDate", "X"),
    ("PerformedProcedureStepEndTime", "X"),
    ("PerformedProcedureStepStartDateTime", "X"),
    ("PerformedProcedureStepEndDateTime", "X"),
    ("PerformedProcedureStepDescription", "X"),
    ("CommentsOnThePerformedProcedureStep", "X"),
    ("PerformedStationName", "X"),
    ("PerformedStationAETitle", "X"),
    ("PerformedLocation", "X"),
    ("ScheduledProcedureStepID", "X"),
    ("ScheduledProcedureStepDescription", "X"),
    ("ScheduledProcedureStepStartDate", "X"),
    ("ScheduledProcedureStepStartTime", "X"),
    ("ScheduledProcedureStepEndDate", "X"),
    ("ScheduledProcedureStepEndTime", "X"),
    ("ScheduledProcedureStepLocation", "X"),
    ("ScheduledPerformingPhysicianName", "X"),
    ("ScheduledStationName", "X"),
    ("ScheduledStationAETitle", "X"),
    ("ScheduledHumanPerformersSequence", "X"),
    ("ActualHumanPerformersSequence", "X"),
    ("HumanPerformerName", "X"),
    ("HumanPerformerOrganization", "X"),
    ("FrameOfReferenceUID", "U"),
    ("SynchronizationFrameOfReferenceUID", "U"),
    # Equipment
    ("InstitutionName", "X"),  # X/Z/D
    ("InstitutionAddress", "X"),
    ("InstitutionalDepartmentName", "X"),
    ("InstitutionalDepartmentTypeCodeSequence", "X"),
    ("InstitutionCodeSequence", "X"),  # X/Z/D
    ("StationName", "X"),  # X/Z/D
    ("StationAETitle", "X"),
    ("RetrieveAETitle", "X"),
    ("DeviceSerialNumber", "D"),  # X/Z/D; Type 1 in Enhanced General Equipment (OPT)
    ("DeviceUID", "U"),
    ("DeviceDescription", "X"),
    ("LongDeviceDescription", "X"),
    ("DetectorID", "X"),  # X/D
    ("GantryID", "X"),
    ("GeneratorID", "X"),
    ("CassetteID", "X"),
    ("PlateID", "X"),
    ("XRayDetectorID", "X"),  # D; enhanced XA/XRF only
    ("XRaySourceID", "X"),  # D; idem
    ("DateOfLastCalibration", "X"),
    ("TimeOfLastCalibration", "X"),
    ("DateOfLastDetectorCalibration", "X"),  # X/D
    ("TimeOfLastDetectorCalibration", "X"),  # X/D
    ("DateOfManufacture", "X"),
    ("DateOfInstallation", "X"),
    ("UniqueDeviceIdentifier", "X"),
    ("UDISequence", "X"),
    ("NetworkID", "X"),
    ("AcquisitionDeviceProcessingDescription", "X"),  # X/D
    # Image, instance and acquisition
    ("SOPInstanceUID", "U"),
    ("InstanceCreationDate", "X"),  # X/D
    ("InstanceCreationTime", "X"),  # X/Z/D
    ("InstanceCreatorUID", "U"),
    ("InstanceCoercionDateTime", "X"),
    ("TimezoneOffsetFromUTC", "X"),
    ("ContentDate", "D"),  # Z/D
    ("ContentTime", "D"),  # Z/D
    ("AcquisitionDate", "Z"),  # X/Z
    ("AcquisitionTime", "Z"),  # X/Z
    ("AcquisitionDateTime", "D"),  # X/Z/D; Type 1 in the OPT image module
    ("AcquisitionUID", "U"),
    ("StartAcquisitionDateTime", "X"),  # X/D
    ("EndAcquisitionDateTime", "X"),  # X/D
    ("FrameAcquisitionDateTime", "D"),
    ("FrameReferenceDateTime", "D"),
    ("AcquisitionContextSequence", "Z"),  # X/Z; Type 2 in the Acquisition Context module
    ("AcquisitionComments", "X"),
    ("AcquisitionProtocolDescription", "X"),
    ("ContrastBolusAgent", "Z"),  # Z/D
    ("ContrastBolusStartTime", "X"),
    ("ContrastBolusStopTime", "X"),
    ("ImageComments", "X"),
    ("ImagePresentationComments", "X"),
    ("IdentifyingComments", "X"),
    ("CommentsOnRadiationDose", "X"),
    ("FrameComments", "X"),
    ("DerivationDescription", "X"),
    ("IconImageSequence", "X"),  # a thumbnail may show burned-in text
    ("ReferencedImageSequence", "K"),  # X/Z/U*: kept, UIDs inside remapped
    ("SourceImageSequence", "K"),  # X/Z/U*: idem
    ("ReferencedSOPInstanceUID", "U"),
    ("ReferencedFrameOfReferenceUID", "U"),
    ("RelatedFrameOfReferenceUID", "U"),
    ("IrradiationEventUID", "U"),
    ("ConcatenationUID", "U"),
    ("DimensionOrganizationUID", "U"),
    ("PaletteColorLookupTableUID", "U"),
    ("LargePaletteColorLookupTableUID", "U"),
    ("StorageMediaFileSetUID", "U"),
    ("ReferencedSOPInstanceUIDInFile", "U"),
    ("FailedSOPInstanceUIDList", "U"),
    ("TransactionUID", "U"),
    ("UID", "U"),
    ("ObservationUID", "U"),
    ("TrackingUID", "U"),
    ("FiducialUID", "U"),
    ("TargetUID", "U"),
    ("PyramidUID", "U"),
    ("DateOfSecondaryCapture", "X"),
    ("TimeOfSecondaryCapture", "X"),
    ("ContentSequence", "X"),  # D for SR documents; images are not SR, so removed
    ("ContentCreatorName", "Z"),  # Z/D
    ("ContentCreatorIdentificationCodeSequence", "X"),
    ("BarcodeValue", "X"),  # X/Z
    ("LabelText", "X"),  # X/Z
    ("TextString", "X"),
    ("TextComments", "X"),
    ("Arbitrary", "X"),
    ("CurveDate", "X"),
    ("CurveTime", "X"),
    ("OverlayDate", "X"),
    ("OverlayTime", "X"),
    # Provenance and signatures
    ("OriginalAttributesSequence", "X"),
    ("ModifiedAttributesSequence", "X"),
    ("NonconformingModifiedAttributesSequence", "X"),
    ("DigitalSignaturesSequence", "X"),
    ("ReferencedDigitalSignatureSequence", "X"),
    ("ReferencedSOPInstanceMACSequence", "X"),
    ("MAC", "X"),
    ("DataSetTrailingPadding", "X"),
)

BASIC_PROFILE: dict[str, Action] = dict(BASIC_PROFILE_TABLE)

# Not in Table E.1-1, removed as well: it holds encrypted copies of the original identifiers
# for someone else's re-identification key, which this copy must not carry.
EXTRA_REMOVALS: frozenset[str] = frozenset({"EncryptedAttributesSequence"})

# UIDs that name a standard thing, not an instance: never remapped (values under the DICOM
# root 1.2.840.10008 are kept as well, whatever the attribute).
STANDARD_UID_KEYWORDS: frozenset[str] = frozenset(
    {
        "SOPClassUID",
        "ReferencedSOPClassUID",
        "ReferencedSOPClassUIDInFile",
        "MediaStorageSOPClassUID",
        "AffectedSOPClassUID",
        "RequestedSOPClassUID",
        "TransferSyntaxUID",
        "ReferencedTransferSyntaxUIDInFile",
        "ImplementationClassUID",
        "CodingSchemeUID",
        "ContextUID",
        "MappingResourceUID",
        "ContextGroupExtensionCreatorUID",
        "PrivateInformationCreatorUID",
    }
)
