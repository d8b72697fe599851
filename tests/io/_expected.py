"""Expected calibration of every image file in ../shared/data/formats (its README's table).

The README gives pixel sizes to about 6 significant digits; the values here are the same
numbers at the full precision the files store (checked against the README by hand), so the
tests can use a 1e-6 relative tolerance. ``scale``/``units`` are per axis, napari order.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Expected:
    path: str  # relative to ../shared/data/formats
    scale: tuple[float, ...] | None  # None: uncalibrated (px)
    units: tuple[str, ...] = ("nm", "nm")
    n_images: int = 1
    shape: tuple[int, ...] | None = None
    warns: bool = False  # a CalibrationWarning is expected
    metadata: dict[str, object] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.path.split("/")[-1]


DM = "rosettasciio/digitalmicrograph"
TIF = "rosettasciio/tiff"
NC = "openNCEM"

EXPECTED: list[Expected] = [
    # --- Gatan DM3 / DM4
    Expected(
        f"{DM}/2D/test_STEM_image.dm3",
        (0.24853801727294922,) * 2,
        shape=(68, 68),
        metadata={"voltage_kV": 200.0, "magnification": 225000.0, "acquisition_mode": "STEM"},
    ),
    Expected(
        f"{DM}/2D/multi_signal.dm3",
        (0.017751578241586685,) * 2,
        shape=(512, 512),
        metadata={"voltage_kV": 300.0, "acquisition_mode": "STEM"},
    ),
    Expected(
        f"{DM}/2D/test_diffraction_pattern.dm3",
        (0.17443285882472992,) * 2,
        units=("1/nm", "1/nm"),
        shape=(87, 87),
    ),
    Expected(f"{DM}/2D/test-MonarcCL_mono-image.dm4", (18325.349807739258,) * 2),
    Expected(
        f"{DM}/test_stackbuilder_imagestack.dm3",
        (1.0, 59.98290330171585, 59.98290330171585),
        units=("px", "nm", "nm"),
        shape=(3, 2, 16),
    ),
    Expected(f"{DM}/Fei_HAADF-DE_location.dm3", (5.506073124706745,) * 2),
    Expected(f"{DM}/Fei_HAADF-UK_location.dm3", (5.506073124706745,) * 2),
    Expected(f"{TIF}/test_dm_image_um_unit.dm3", (168.67469251155853,) * 2, shape=(68, 68)),
    Expected(f"{NC}/dmTest_float32_nonSquare_diffPixelSize.dm3", (0.2, 1.0), shape=(64, 128)),
    Expected(
        f"{NC}/dmTest_3D_int16_64,65,66.dm3",
        (4000.0, 3.0, 0.002),
        units=("nm", "nm", "nm"),
        shape=(66, 65, 64),
    ),
    # --- MRC
    Expected(
        "rosettasciio/mrc/HAADFscan.mrc",
        (5.679131317138672,) * 2,
        shape=(16, 16),
        metadata={"voltage_kV": 300.0, "instrument": "Spectra"},
    ),
    Expected("rosettasciio/mrc/20241021_00405_final.mrc", None, warns=True, shape=(4, 8)),
    Expected("rosettasciio/mrc/ROI_Random_Scan_Sum.mrc", None, warns=True, shape=(29, 12)),
    Expected(f"{NC}/temp.mrc", (1.0, 0.2, 0.2), units=("px", "nm", "nm"), shape=(3, 128, 128)),
    # --- TIFF
    Expected(
        f"{TIF}/tiff_FEI_Helios_unzipped/FEI-Helios-Ebeam-16bits.tif",
        (3372.4,) * 2,
        shape=(471, 512),
        metadata={"voltage_kV": 5.0},
    ),
    Expected(f"{TIF}/tiff_FEI_Helios_unzipped/FEI-Helios-Ebeam-8bits.tif", (3372.4,) * 2),
    Expected(
        f"{TIF}/tiff_FEI_Helios_unzipped/FEI-Helios-navcam.tif", (263973.95833333335, 263974.609375)
    ),
    Expected(
        f"{TIF}/tiff_FEI_Helios_unzipped/FEI-Helios-navcam-with-no-IRBeam.tif", None, warns=True
    ),
    # Zeiss: the true size of the 512-px image, not the 1024-px display size (5.825 nm)
    Expected(
        f"{TIF}/tiff_Zeiss_SEM_unzipped/test_tiff_Zeiss_SEM_512pix.tif",
        (11.649976,) * 2,
        shape=(384, 512),
    ),
    Expected(
        f"{TIF}/tiff_Zeiss_SEM_unzipped/test_tiff_Zeiss_SEM_1k.tif",
        (2614.514,) * 2,
        shape=(768, 1024),
    ),
    Expected(
        f"{TIF}/TVIPS_bin4_unzipped/TVIPS_bin4.tif", (1.4208036661148071,) * 2, shape=(1024, 1024)
    ),
    Expected(
        f"{TIF}/JEOL-SightX-TEM-mag-dummy.tif",
        (1.8207885304659497,) * 2,
        metadata={"voltage_kV": 200.0},
    ),
    Expected(
        f"{TIF}/JEOL-SightX-SAED-dummy.tif", (0.2722542485800544,) * 2, units=("1/nm", "1/nm")
    ),
    Expected(f"{TIF}/test_loading_image_saved_with_DM.tif", (168.67469251155853,) * 2),
    Expected(
        f"{TIF}/test_loading_image_saved_with_imageJ.tif",
        (168.67471098853332,) * 2,
        metadata={"voltage_kV": 200.0},
    ),
    Expected(f"{TIF}/test_loading_image_saved_with_imageJ_no_scale.tif", None),
    Expected(
        f"{TIF}/test_loading_image_saved_with_imageJ_stack.tif",
        (2500.0, 168.67471098853332, 168.67471098853332),
        units=("nm", "nm", "nm"),
        shape=(2, 68, 68),
    ),
    # --- TIA SER / EMI
    Expected(
        f"{NC}/16_STOimage.emi",
        (0.010012704240403384,) * 2,
        shape=(1024, 1024),
        metadata={"magnification": 13500000.0, "acquisition_mode": "STEM"},
    ),
    Expected(f"{NC}/16_STOimage_1.ser", (0.010012704240403384,) * 2),
    Expected(
        "rosettasciio/tia/new/128x128-TEM_search.emi",
        (5.261214205047081,) * 2,
        metadata={"acquisition_mode": "TEM"},
    ),
    Expected("rosettasciio/tia/old/64x64_TEM_images_acquire_1.ser", (6.281833616298531,) * 2),
    # --- EMD
    Expected(f"{NC}/Acquisition_18.emd", (0.012246524915099144,) * 2, shape=(1024, 1024)),
    Expected(
        f"{NC}/Camera_Ceta_Imaging_Micro.emd",
        (3.1388370544495516,) * 2,
        # Velox: TEM operating mode, a camera (no scanning detector).
        metadata={"voltage_kV": 300.0, "acquisition_mode": "TEM"},
    ),
    Expected(
        f"{NC}/STEM_HAADF_Diffraction_Micro.emd",
        (87.37079614225583,) * 2,
        metadata={"acquisition_mode": "STEM"},  # Velox: a scanning detector
    ),
    Expected(
        "rosettasciio/emd/fei_example_tem_stack.emd",
        (0.8, 0.008172883192297851, 0.008172883192297851),
        units=("s", "nm", "nm"),
        shape=(2, 3, 3),
    ),
    Expected(
        "rosettasciio/emd/velox_emd_version11_unzipped/Test_SI_16x16_215_kx.emd",
        (3.5992492559614684,) * 2,
        n_images=5,
    ),
]
