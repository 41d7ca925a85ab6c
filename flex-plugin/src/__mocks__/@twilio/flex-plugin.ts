/** @twilio/flex-plugin at its boundary: the base class and the loader Flex calls. */
export class FlexPlugin {
  name: string;

  constructor(name: string) {
    this.name = name;
  }
}

export const loadPlugin = jest.fn();
