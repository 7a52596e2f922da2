/** Entry of the notebook widget's iframe: the viewer on the kernel's data (postmessage.js),
 * its state shared with the widget's traitlets (bridge.js). */
import { boot } from '../app.js';
import { PostMessageDataSource } from './postmessage.js';
import { bindParent } from './bridge.js';

boot(new PostMessageDataSource(), { onStart: (app) => bindParent(app) });
