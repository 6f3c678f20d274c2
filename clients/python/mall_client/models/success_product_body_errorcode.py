from enum import IntEnum


class SuccessProductBodyErrorcode(IntEnum):
    VALUE_0 = 0

    def __str__(self) -> str:
        return str(self.value)
