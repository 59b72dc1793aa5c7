"""`kiosk provision`: the six steps that make a blank kiosk a fleet member. Each step's outcome is
kept in <state_dir>/provisioning/state.json, so running the command again resumes where it
stopped and skips what is done (idempotent); --reprovision starts over with a new device key."""

from provisioning.provision.enrolment import Waiting
from provisioning.provision.files import BLANK_CONFIG, Paths, edit_config
from provisioning.provision.keys import device_serial
from provisioning.provision.reset import factory_reset, shred
from provisioning.provision.state import PIN_NAMES, REMEMBERED, Options, ProvisionState
from provisioning.provision.steps import Provisioner, SelfTestFailed

__all__ = [
    "BLANK_CONFIG",
    "PIN_NAMES",
    "REMEMBERED",
    "Options",
    "Paths",
    "ProvisionState",
    "Provisioner",
    "SelfTestFailed",
    "Waiting",
    "device_serial",
    "edit_config",
    "factory_reset",
    "shred",
]
