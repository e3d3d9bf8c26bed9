"""Config sections of the hardware front ends: ``[gpio]``, ``[serial_board]`` and ``[clerk_link]``.

Same style as :mod:`hcp.config.schema`: unknown keys are errors, every key has
a description and an example. The lead adds them to ``AgentConfig`` as
``gpio``, ``serial_board`` and ``clerk_link``. GPIO pins are BCM numbers.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: BCM numbers usable on the 40-pin header.
BCM_MIN, BCM_MAX = 0, 27
#: Baud rates the serial front ends accept (what common USB-serial chips do).
BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)


#: A BCM pin number.
Bcm = Annotated[int, Field(ge=BCM_MIN, le=BCM_MAX)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpioSection(_Section):
    star_pins: tuple[Bcm, Bcm, Bcm, Bcm, Bcm] = Field(
        (5, 6, 13, 19, 26), description="BCM pins of the star keys, 1 star first.", examples=[[5, 6, 13, 19, 26]])
    star_led_pins: tuple[Bcm, Bcm, Bcm, Bcm, Bcm] | None = Field(
        (12, 16, 20, 21, 25), description="BCM pins of the LEDs in the star keys, 1 star first; "
        "omit for keys without LEDs.", examples=[[12, 16, 20, 21, 25]])
    trigger_pin: Bcm | None = Field(17, description="BCM pin of the clerk's 请评价 button; omit if there is "
                                    "none.", examples=[17])
    status_led_pin: Bcm | None = Field(27, description="BCM pin of the status LED; omit if there is none.",
                                       examples=[27])
    buzzer_pin: Bcm | None = Field(22, description="BCM pin of the buzzer; omit if there is none.",
                                   examples=[22])
    pull_up: bool = Field(True, description="Keys connect the pin to ground (true, internal pull-up) or "
                          "to 3.3 V (false, internal pull-down).", examples=[True])
    led_active_high: bool = Field(True, description="An LED lights when its pin is high (false: when low).",
                                  examples=[True])
    buzzer_active_high: bool = Field(True, description="The buzzer sounds when its pin is high.",
                                     examples=[True])
    bounce_ms: float = Field(30, ge=0, le=500, description="Edges of a key this soon after its last "
                             "accepted edge are contact bounce and ignored.", examples=[30])
    stuck_s: float = Field(10, gt=0, le=3600, description="A key held down longer than this is reported "
                           "stuck (a fault) and no longer blocks the other keys.", examples=[10])
    beep_ms: float = Field(80, ge=0, le=2000, description="Length of the acknowledging beep.", examples=[80])
    item_code: str = Field("unknown", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$",
                           description="Item code of prompts raised by the 请评价 button (it carries "
                           "no case; the collector links it to the window's nearest case).",
                           examples=["11410100MB1234567X-001"])
    item_name: str = Field("窗口服务", max_length=200, description="Item name of prompts raised by the "
                           "请评价 button.", examples=["不动产登记"])
    clerk_id: str = Field("unknown", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$",
                          description="Clerk id of button prompts when no clerk has signed in over the "
                          "clerk link.", examples=["E1024"])

    @model_validator(mode="after")
    def _pins_distinct(self) -> GpioSection:
        pins = [*self.star_pins, *(self.star_led_pins or ()),
                *(p for p in (self.trigger_pin, self.status_led_pin, self.buzzer_pin) if p is not None)]
        twice = sorted({p for p in pins if pins.count(p) > 1})
        if twice:
            raise ValueError(f"BCM pin(s) {', '.join(map(str, twice))} used for more than one device")
        return self


class _SerialSection(_Section):
    baudrate: int = Field(115200, description="Line speed in baud (8N1).", examples=[115200])
    heartbeat_s: float = Field(1.0, gt=0, le=60, description="How often the terminal sends a heartbeat "
                               "frame.", examples=[1.0])
    reconnect_max_s: float = Field(5.0, gt=0, le=300, description="Longest wait between attempts to "
                                   "reopen a port that went away (unplugged).", examples=[5.0])

    @model_validator(mode="after")
    def _standard_baud(self) -> _SerialSection:
        if self.baudrate not in BAUD_RATES:
            raise ValueError(f"baudrate {self.baudrate} is not one of {', '.join(map(str, BAUD_RATES))}")
        return self


class SerialBoardSection(_SerialSection):
    port: str = Field("/dev/ttyACM0", min_length=1, description="Serial device of the button board; a "
                      "/dev/serial/by-id/ name survives replugging into another USB socket.",
                      examples=["/dev/serial/by-id/usb-hcp_keys_0001-if00"])
    heartbeat_timeout_s: float = Field(3.5, gt=0, le=600, description="No frame from the board for this "
                                       "long is a fault.", examples=[3.5])
    beep_ms: int = Field(80, ge=0, le=2000, description="Length of the acknowledging beep.", examples=[80])


class ClerkLinkSection(_SerialSection):
    port: str = Field("/dev/ttyUSB0", min_length=1, description="Serial device of the line to the clerk's "
                      "PC or business system.", examples=["/dev/serial/by-id/usb-FTDI_FT232R_A10K-if00-port0"])
    heartbeat_timeout_s: float = Field(0, ge=0, le=600, description="No frame from the clerk's PC for this "
                                       "long is a fault; 0: the PC need not send heartbeats.", examples=[0])
    remember_prompts: int = Field(256, ge=1, le=10000, description="How many recent prompts the terminal "
                                  "can report the outcome of.", examples=[256])
