"""What a de-identified RadViewer copy may hold: an ALLOW-LIST, checked against DICOM PS3.15
(2024b) Annex E, Table E.1-1 "Application Level Confidentiality Profile Attributes".

Anything not named here is removed: every attribute of Table E.1-1 that is not kept below
(its action X, or a D/Z whose module RadViewer does not keep), every private tag (none is
kept: ``KEPT_PRIVATE_TAGS`` is empty on purpose), every curve (50xx) and overlay (60xx)
group, the command group, retired and unknown tags, and every Person Name (PN) attribute
except Patient's Name (given the keyed pseudonym) and Referring Physician's Name (emptied).
Sequences are kept only when listed, and their items are cleaned by the same rules, at
every depth.

Actions (PS3.15 E.3.1) on what is kept:

    K  keep as is (never for a Table E.1-1 attribute, except the U* sequences below)
    Z  replace with a zero-length value (a Type 2 attribute of a kept module)
    D  replace with a dummy value of the VR (a Type 1 attribute of a kept module; a
       sequence is kept with its items cleaned)
    U  replace the UID by the keyed remap of ``clinical.ingest.deid`` (consistent, so
       references still resolve); values under the DICOM root 1.2.840.10008 are kept

Where the table offers a choice (X/Z, X/D, Z/D, X/Z/D, X/Z/U*) the attribute is removed (X)
unless a module RadViewer keeps needs it: Content Date/Time and Acquisition DateTime (Type 1
in the OPT image module) and Device Serial Number (Type 1 in Enhanced General Equipment) get
a dummy, Acquisition Date/Time and the Acquisition Context Sequence (Type 2) are emptied,
Referenced/Source Image Sequence (U*) are kept with every UID inside remapped.

Options of PS3.15 Table E.1-1 in use: none of the Retain options - not Retain UIDs (UIDs are
remapped), not Retain Longitudinal Temporal Information (dates and times are emptied,
replaced by a dummy or removed, not shifted), not Retain Patient Characteristics, Device
Identity, Institution Identity or Safe Private. Clean Descriptors, Clean Structured Content
and Clean Graphics are not used: descriptors, content and graphics are removed instead.
Clean Pixel Data is not done: an image marked Burned In Annotation YES is flagged (and
refused where ``RADVIEWER_REFUSE_BURNED_IN`` is set).
"""

from __future__ import annotations

from typing import Literal

from pydicom.datadict import dictionary_VR, tag_for_keyword

Action = Literal["K", "Z", "D", "U"]

# Table E.1-1 attributes kept, with the action the profile allows for them.
PROFILE_ATTRIBUTES: dict[str, Action] = {
    # Patient (Type 2): given the pseudonym (Patient's Name, Patient ID) or emptied.
    "PatientName": "Z",  # Z -> the keyed pseudonym ("or a non-zero length dummy value")
    "PatientID": "D",  # Z/D -> the keyed pseudonym
    "PatientBirthDate": "Z",
    "PatientSex": "Z",
    # General Study
    "StudyInstanceUID": "U",
    "StudyDate": "Z",
    "StudyTime": "Z",
    "ReferringPhysicianName": "Z",
    "StudyID": "Z",
    "AccessionNumber": "Z",
    # Series, frame of reference, equipment
    "SeriesInstanceUID": "U",
    "FrameOfReferenceUID": "U",
    "SynchronizationFrameOfReferenceUID": "U",
    "DeviceSerialNumber": "D",  # X/Z/D; Type 1 in Enhanced General Equipment (OPT)
    # Image and instance
    "SOPInstanceUID": "U",
    "ContentDate": "D",  # Z/D
    "ContentTime": "D",  # Z/D
    "AcquisitionDate": "Z",  # X/Z
    "AcquisitionTime": "Z",  # X/Z
    "AcquisitionDateTime": "D",  # X/Z/D; Type 1 in the OPT image module
    "FrameAcquisitionDateTime": "D",
    "FrameReferenceDateTime": "D",
    "AcquisitionContextSequence": "Z",  # X/Z; Type 2 in the Acquisition Context module
    "IrradiationEventUID": "U",
    "ConcatenationUID": "U",
    "DimensionOrganizationUID": "U",
    "PaletteColorLookupTableUID": "U",
    "LargePaletteColorLookupTableUID": "U",
    "ReferencedSOPInstanceUID": "U",
    "ReferencedImageSequence": "K",  # X/Z/U*: kept, every UID inside remapped
    "SourceImageSequence": "K",  # X/Z/U*: idem
}

# Attributes outside Table E.1-1 that an image needs and that do not identify anyone.
IMAGE_ATTRIBUTES: frozenset[str] = frozenset(
    {
        # SOP common, study/series/equipment descriptors that are coded, not free text
        "SpecificCharacterSet", "SOPClassUID", "InstanceNumber", "SeriesNumber", "Modality",
        "Laterality", "ImageLaterality", "BodyPartExamined", "PatientPosition", "ViewPosition",
        "PresentationIntentType", "Manufacturer", "ManufacturerModelName", "SoftwareVersions",
        "PositionReferenceIndicator", "AcquisitionNumber", "ImagesInAcquisition",
        "PatientOrientation", "ImageType", "QualityControlImage", "BurnedInAnnotation",
        "RecognizableVisualFeatures", "LossyImageCompression", "LossyImageCompressionRatio",
        "LossyImageCompressionMethod", "CalibrationImage", "ContentQualification",
        "AcquisitionDuration", "PixelPresentation", "VolumetricProperties",
        "VolumeBasedCalculationTechnique",
        # Image pixel, palette, colour
        "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated",
        "BitsStored", "HighBit", "PixelRepresentation", "PlanarConfiguration", "PixelAspectRatio",
        "SmallestImagePixelValue", "LargestImagePixelValue", "PixelPaddingValue",
        "PixelPaddingRangeLimit", "NumberOfFrames", "FrameIncrementPointer", "PixelData",
        "FloatPixelData", "DoubleFloatPixelData", "ExtendedOffsetTable",
        "ExtendedOffsetTableLengths", "ICCProfile", "ColorSpace",
        "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
        "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData",
        "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData",
        "SegmentedRedPaletteColorLookupTableData", "SegmentedGreenPaletteColorLookupTableData",
        "SegmentedBluePaletteColorLookupTableData",
        # Modality and VOI LUT, presentation
        "RescaleIntercept", "RescaleSlope", "RescaleType", "ModalityLUTSequence", "LUTDescriptor",
        "LUTExplanation", "ModalityLUTType", "LUTData", "WindowCenter", "WindowWidth",
        "WindowCenterWidthExplanation", "VOILUTFunction", "VOILUTSequence", "PresentationLUTShape",
        "PixelIntensityRelationship", "PixelIntensityRelationshipSign",
        # Image plane and X-ray acquisition (DX, CR)
        "PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing",
        "PixelSpacingCalibrationType", "PixelSpacingCalibrationDescription",
        "EstimatedRadiographicMagnificationFactor", "SliceThickness", "ImageOrientationPatient",
        "ImagePositionPatient", "SliceLocation", "KVP", "ExposureTime", "XRayTubeCurrent",
        "Exposure", "ExposureInuAs", "DistanceSourceToDetector", "DistanceSourceToPatient",
        "BodyPartThickness", "CompressionForce", "Grid", "FilterType", "FocalSpots",
        "AnodeTargetMaterial", "DetectorType", "DetectorConfiguration", "DetectorBinning",
        "DetectorElementPhysicalSize", "DetectorElementSpacing", "DetectorActiveShape",
        "DetectorActiveDimensions", "FieldOfViewShape", "FieldOfViewDimensions",
        "FieldOfViewOrigin", "FieldOfViewRotation", "FieldOfViewHorizontalFlip", "ExposureIndex",
        "TargetExposureIndex", "DeviationIndex", "RelativeXRayExposure", "Sensitivity",
        "PlateType", "PhosphorType",
        # Coded anatomy and views, and the items of any code sequence
        "ViewCodeSequence", "ViewModifierCodeSequence", "AnatomicRegionSequence",
        "AnatomicRegionModifierSequence", "PrimaryAnatomicStructureSequence",
        "PatientOrientationCodeSequence", "PatientOrientationModifierCodeSequence",
        "PatientGantryRelationshipCodeSequence", "DerivationCodeSequence",
        "PurposeOfReferenceCodeSequence", "AcquisitionDeviceTypeCodeSequence", "CodeValue",
        "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning", "LongCodeValue",
        "URNCodeValue", "ContextIdentifier", "ContextUID", "MappingResource",
        "MappingResourceUID", "MappingResourceName", "ContextGroupExtensionFlag",
        "EquivalentCodeSequence",
        # References (inside Referenced/Source Image Sequence)
        "ReferencedSOPClassUID", "ReferencedFrameNumber", "SpatialLocationsPreserved",
        # Enhanced multi-frame (OPT): functional groups and dimensions
        "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence",
        "FrameContentSequence", "FrameAcquisitionNumber", "FrameAcquisitionDuration",
        "DimensionIndexValues", "StackID", "InStackPositionNumber", "TemporalPositionIndex",
        "PlanePositionSequence", "PlaneOrientationSequence", "PixelMeasuresSequence",
        "FrameVOILUTSequence", "PixelValueTransformationSequence", "FrameAnatomySequence",
        "FrameLaterality", "DimensionOrganizationSequence", "DimensionIndexSequence",
        "DimensionIndexPointer", "FunctionalGroupPointer", "DimensionDescriptionLabel",
        "DimensionOrganizationType", "ConcatenationFrameOffsetNumber", "InConcatenationNumber",
        "InConcatenationTotalNumber", "OphthalmicFrameLocationSequence", "ReferenceCoordinates",
        "DepthOfTransverseImage", "OphthalmicImageOrientation", "MaximumDepthDistortion",
        "AlongScanSpatialResolution", "AcrossScanSpatialResolution", "DepthSpatialResolution",
        "IlluminationWaveLength", "IlluminationPower", "IlluminationBandwidth",
        # Written by de-identification itself (PS3.15 E.1.1 item 6, PS3.3 C.12.1.1.7)
        "PatientIdentityRemoved", "DeidentificationMethod", "DeidentificationMethodCodeSequence",
        "LongitudinalTemporalInformationModified",
    }
)

# (Private Creator, element offset) pairs kept (``deidentify(kept_private=...)``); none is by
# default, and no private tag that is not named here is ever kept.
KEPT_PRIVATE_TAGS: frozenset[tuple[str, int]] = frozenset()

# UIDs that name a standard thing, not an instance: kept (values under the DICOM root
# 1.2.840.10008 are kept as well, whatever the attribute).
STANDARD_UID_KEYWORDS: frozenset[str] = frozenset(
    {"SOPClassUID", "ReferencedSOPClassUID", "ContextUID", "MappingResourceUID"}
)


def _build() -> dict[int, Action]:
    allowed: dict[int, Action] = {}
    overlap = IMAGE_ATTRIBUTES & set(PROFILE_ATTRIBUTES)
    if overlap:
        raise ImportError(f"attributes listed twice in the de-identification allow-list: {sorted(overlap)}")
    for keyword, action in [*PROFILE_ATTRIBUTES.items(), *((k, "K") for k in IMAGE_ATTRIBUTES)]:
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise ImportError(f"{keyword} is not a DICOM keyword")
        vr = dictionary_VR(tag)
        # The invariants the module docstring promises, held at import time.
        if vr == "PN" and keyword not in ("PatientName", "ReferringPhysicianName"):
            raise ImportError(f"{keyword}: no Person Name attribute is kept")
        if vr == "UI" and action == "K" and keyword not in STANDARD_UID_KEYWORDS:
            raise ImportError(f"{keyword}: an instance UID is kept only remapped (U)")
        allowed[tag] = action  # type: ignore[assignment]
    return allowed


# Tag -> action of everything a stored copy may hold (private tags aside, see above).
ALLOWED: dict[int, Action] = _build()
