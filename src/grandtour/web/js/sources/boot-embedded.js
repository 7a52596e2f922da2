/** Entry of an HTML export: the viewer on the data embedded in the file (#grandtour-data). */
import { boot } from '../app.js';
import { EmbeddedDataSource } from './embedded.js';

const el = document.getElementById('grandtour-data');
boot(new EmbeddedDataSource(el ? JSON.parse(el.textContent) : {}));
