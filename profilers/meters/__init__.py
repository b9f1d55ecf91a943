"""Power meters behind one interface: energy per inference with the method recorded."""
from profilers.meters.base import METERS, EnergyReading, MeterUnavailable, PowerMeter, create_meter

__all__ = ["METERS", "EnergyReading", "MeterUnavailable", "PowerMeter", "create_meter"]
