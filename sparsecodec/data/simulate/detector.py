"""Parameters of the sPHENIX TPC outer layer group as simulated for the public dataset.

Values follow the December 2021 defaults of the sPHENIX simulation (coresoftware
``simulation/g4simulation/g4tpc``: PHG4TpcPadPlaneReadout, PHG4TpcElectronDrift,
PHG4TpcDigitizer), with which the public BCAE dataset was produced: Ne/CF4 50/50 gas,
8.0 cm/us drift velocity and a 53 ns ADC clock, giving 498 time samples over the two halves.
Values marked "estimate" were not read from a primary source.

Lengths are in cm, times in microseconds, charge in electrons, ADC values in counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..layout import NUM_SECTORS, WEDGE_SHAPE


@dataclass(frozen=True)
class Detector:
    """Geometry, gas, readout and digitization of the 16-layer outer group of the sPHENIX TPC."""

    # Pad rows: 16 rings of equal thickness between 60 and 77 cm (2021 simulation geometry).
    layers: int = WEDGE_SHAPE[0]
    inner_radius: float = 60.0
    layer_thickness: float = 1.0625
    pads_per_ring: int = NUM_SECTORS * WEDGE_SHAPE[1]
    # Field cages bound the gas volume; a track leaving it stops (outer cage at 78 cm is an
    # estimate of where the outer group's gas ends).
    outer_field_cage_radius: float = 78.0

    # Drift: length per half, speed, and the ADC clock that sets the time sample size.
    drift_length: float = 105.5
    drift_velocity: float = 8.0  # cm/us, Ne/CF4 50/50
    adc_clock_us: float = 0.053
    time_samples: int = WEDGE_SHAPE[2]

    # Diffusion in cm/sqrt(cm) of drift, plus a constant smear per electron (cm).
    transverse_diffusion: float = 0.004
    longitudinal_diffusion: float = 0.012
    transverse_smear: float = 0.085
    longitudinal_smear: float = 0.105

    # Ionization of a minimum-ionizing particle: electrons per cm (Ne/CF4), and the density of
    # primary ionization clusters, about 12/cm in Ne and 51/cm in CF4 (estimate from tabulated
    # values for the pure gases).
    electrons_per_cm: float = 71.5
    clusters_per_cm: float = 31.5

    # GEM stack: mean gain (exponential distribution per electron) and charge-cloud width.
    gem_gain: float = 1400.0
    gem_cloud_sigma: float = 0.04

    # SAMPA shaping as a split Gaussian in time: leading and trailing widths in us.
    shaping_lead_us: float = 0.032
    shaping_tail_us: float = 0.048

    # Digitization: 20 mV/fC x 2.4 scale-up, 2200 mV = 1024 counts; pedestal 50000 electrons,
    # noise 670 electrons (ENC), threshold 2700 electrons over pedestal. The signal and noise
    # conversion gains differ by the 2.4 scale-up, as in PHG4TpcDigitizer.
    charge_to_mv: float = 20.0 * 1.6e-4
    signal_scale_up: float = 2.4
    adc_per_mv: float = 1024.0 / 2200.0
    pedestal_electrons: float = 50000.0
    noise_electrons: float = 670.0
    threshold_electrons: float = 2700.0
    max_adc: int = 1023
    # A bin above threshold is recorded together with the next ones up to this block length.
    zero_suppression_block: int = 5

    # Acceptance cut of the public data: a wavelet that starts at pseudorapidity above 1.1,
    # measured from z = +-10 cm, is dropped (TPCMLDataInterface in the sPHENIX analysis repository).
    eta_cut: float = 1.1
    eta_cut_vertex_offset: float = 10.0

    # Magnetic field in tesla.
    field_tesla: float = 1.4

    @property
    def outer_radius(self) -> float:
        return self.inner_radius + self.layers * self.layer_thickness

    def layer_radius(self, layer: int) -> float:
        """Radius of the centre of pad row ``layer`` (cm)."""
        return self.inner_radius + (layer + 0.5) * self.layer_thickness

    @property
    def time_bin_length(self) -> float:
        """Drift distance covered in one ADC sample (cm): 0.424 cm."""
        return self.drift_velocity * self.adc_clock_us

    @property
    def pad_angle(self) -> float:
        """Azimuthal pitch of a pad (rad)."""
        return 2.0 * math.pi / self.pads_per_ring

    @property
    def adc_per_electron(self) -> float:
        """ADC counts per electron out of the GEM stack: about 3.575e-3."""
        return self.charge_to_mv * self.signal_scale_up * self.adc_per_mv

    @property
    def pedestal_adc(self) -> float:
        """Pedestal in ADC counts: about 74.5."""
        return self.pedestal_electrons * self.charge_to_mv * self.adc_per_mv

    @property
    def noise_adc(self) -> float:
        """RMS noise in ADC counts: about 1.0."""
        return self.noise_electrons * self.charge_to_mv * self.adc_per_mv

    @property
    def threshold_adc(self) -> float:
        """Zero-suppression threshold in ADC counts (pedestal included): about 78.5."""
        return (self.pedestal_electrons + self.threshold_electrons) * self.charge_to_mv * self.adc_per_mv

    @property
    def radius_per_gev(self) -> float:
        """Helix radius (cm) of a unit-charge track per GeV/c of transverse momentum: about 238."""
        return 100.0 / (0.299792458 * self.field_tesla)

    @property
    def membrane_index(self) -> float:
        """Continuous time index of the central membrane on side 1: 211 / 0.424 - 249 = 248.64.

        A full frame of 498 samples starts at z = -105.5 cm, so on side 1 the sample index is
        ``floor(membrane_index - drift / time_bin_length)``.
        """
        return 2.0 * self.drift_length / self.time_bin_length - self.time_samples


#: The detector as simulated for the public BCAE dataset.
SPHENIX_2021 = Detector()
