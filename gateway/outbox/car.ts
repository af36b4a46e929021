/** A sealed batch travels to the cloud as a CARv1 (the IPLD content-addressed archive) of its one block. */
export { singleBlockCar } from '../../shared/protocol/car.ts'
