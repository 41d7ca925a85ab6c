import * as FlexPlugin from '@twilio/flex-plugin';
import BatonPlugin from './BatonPlugin';

FlexPlugin.loadPlugin(BatonPlugin);
